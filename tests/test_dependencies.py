"""Reproducible deploys: the deployed set is locked, CI runs exactly it, and Dependabot keeps the pins moving.

requirements.txt is the file Cloud Functions installs with pip at every deploy, "to prevent your build from
being affected by dependency version changes, consider pinning your dependency packages to a specific version"
(https://cloud.google.com/functions/docs/writing/specifying-dependencies-python). Pinning only the direct
dependencies would still let a redeploy pick up transitive versions that no test ran with, so it is a complete
lock, compiled from requirements.in by pip-compile. requirements-dev.txt (the CI set) is compiled the same way
and holds the deployed set at the same versions; scripts/bootstrap.sh installs it with ``--no-deps`` and
``pip-sync``. These tests prove, from the metadata of the installed packages, that the locks are complete and
consistent for every Python runtime the deployment allows, and that this test run uses exactly them.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
from conftest import checkov
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED = ROOT / "requirements.txt"
DEV = ROOT / "requirements-dev.txt"
CHECKOV = ROOT / "requirements-checkov.txt"
LOCKS = [DEPLOYED, DEV, CHECKOV]
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)")
#: Installed by `python -m venv` and managed by pip itself, never by the lock.
_VENV_BASE = {"pip", "setuptools", "wheel"}
_SKIPPED_DIRS = {".git", ".venv", ".venv-checkov", "node_modules", ".terraform", "__pycache__", "build"}


def pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a lock file; every requirement line must be ``name==version``."""
    found: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.fullmatch(line)
        assert match, f"{path.name}:{number}: {raw.strip()!r} is not pinned exactly (name==version)"
        name = canonicalize_name(match["name"])
        assert name not in found, f"{path.name}:{number}: {name} is pinned twice"
        found[name] = match["version"]
    return found


def direct_requirements(path: Path) -> list[Requirement]:
    """The requirements of a pip-compile input file (``-r`` and ``-c`` lines are followed elsewhere)."""
    lines = (raw.split("#", 1)[0].strip() for raw in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def deploy_runtimes() -> list[str]:
    """The Python versions a deploy may run on: the python_runtime values terraform/variables.tf accepts."""
    text = (ROOT / "terraform" / "variables.tf").read_text()
    block = re.search(r'variable "python_runtime" \{.*?\n\}', text, re.S)
    assert block, "terraform/variables.tf declares no python_runtime"
    versions = sorted({f"3.{minor}" for minor in re.findall(r'"python3(\d+)"', block[0])})
    assert versions, "python_runtime accepts no python3xx value"
    return versions


def target(python: str) -> dict[str, str]:
    """The marker environment of a Cloud Functions instance (Linux x86_64, CPython) on ``python``."""
    current = {key: str(value) for key, value in default_environment().items()}
    return {**current, "python_version": python, "python_full_version": f"{python}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}


def declared(name: str) -> list[Requirement]:
    """The requirements an installed package declares (none if it is not installed: then it shows as missing)."""
    try:
        return [Requirement(text) for text in importlib.metadata.requires(name) or []]
    except importlib.metadata.PackageNotFoundError:
        return []


def applies(requirement: Requirement, python: str, extras: set[str]) -> bool:
    environment = target(python)
    return requirement.marker is None or any(
        requirement.marker.evaluate({**environment, "extra": extra}) for extra in {"", *extras})


def closure(roots: list[Requirement], python: str) -> dict[str, set[str]]:
    """Every package the roots need on ``python``, from the installed metadata: ``{name: extras asked for}``.
    Markers are evaluated for that Python on Linux, not for this interpreter."""
    needed: dict[str, set[str]] = {}
    queue = [requirement for requirement in roots if applies(requirement, python, set())]
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name in needed and set(requirement.extras) <= needed[name]:
            continue
        extras = needed.setdefault(name, set())
        extras.update(requirement.extras)
        queue += [child for child in declared(name) if applies(child, python, extras)]
    return needed


def edges(roots: list[Requirement], python: str) -> Iterator[tuple[str, Requirement]]:
    """(package, requirement) for every requirement that applies on ``python`` inside the closure."""
    for name, extras in closure(roots, python).items():
        for requirement in declared(name):
            if applies(requirement, python, extras):
                yield name, requirement


# --------------------------------------------------------------------------- the deployed lock


def test_the_deployed_requirements_are_a_pip_compile_lock_of_exact_pins() -> None:
    deployed = pins(DEPLOYED)
    assert "pip-compile" in DEPLOYED.read_text().split("\n\n", 1)[0], "requirements.txt is compiled by pip-compile"
    assert "functions-framework" in deployed, "the Functions Framework is pinned explicitly, as Google recommends"
    for requirement in direct_requirements(ROOT / "requirements.in"):
        version = deployed.get(canonicalize_name(requirement.name))
        assert version, f"{requirement.name} (requirements.in) is not in requirements.txt"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.txt pins {requirement.name}=={version}, outside requirements.in's {requirement}")


@pytest.mark.parametrize("python", deploy_runtimes())
def test_the_deployed_lock_is_complete_and_consistent_on_every_allowed_runtime(python: str) -> None:
    """Cloud Functions resolves requirements.txt with pip on the deployed runtime: it finds every package the
    code needs pinned, at a version each dependent accepts, so it has no choice left to make."""
    deployed = pins(DEPLOYED)
    roots = direct_requirements(ROOT / "requirements.in")
    missing = sorted(set(closure(roots, python)) - set(deployed))
    assert not missing, f"needed on Python {python} but not pinned in requirements.txt: {missing}"
    conflicts = [f"{name} needs {requirement}, pinned {deployed[canonicalize_name(requirement.name)]}"
                 for name, requirement in edges(roots, python)
                 if not requirement.specifier.contains(deployed[canonicalize_name(requirement.name)],
                                                       prereleases=True)]
    assert not conflicts, conflicts


def test_the_deployed_lock_pins_nothing_that_no_runtime_needs() -> None:
    roots = direct_requirements(ROOT / "requirements.in")
    needed = set().union(*(closure(roots, python) for python in deploy_runtimes()))
    assert sorted(set(pins(DEPLOYED)) - needed) == []


def test_ci_tests_the_deployed_versions() -> None:
    """requirements-dev.txt, what CI installs, holds every deployed package at its deployed version."""
    deployed, dev = pins(DEPLOYED), pins(DEV)
    different = {name: (version, dev.get(name)) for name, version in deployed.items() if dev.get(name) != version}
    assert not different, f"deployed vs CI versions: {different}"


def test_this_test_run_uses_exactly_the_dev_lock() -> None:
    """The interpreter running the tests has the locked set installed, nothing more, nothing else."""
    locked = pins(DEV)
    installed: dict[str, str] = {str(canonicalize_name(dist.metadata["Name"])): dist.version
                 for dist in importlib.metadata.distributions()}
    wrong = {name: (installed.get(name), version) for name, version in locked.items()
             if installed.get(name) != version}
    extra = sorted(set(installed) - set(locked) - _VENV_BASE)
    assert not wrong and not extra, (
        f"installed vs locked: {wrong}; not locked: {extra}. Run scripts/bootstrap.sh (it syncs .venv)")


def test_the_checkov_in_use_is_the_pinned_one() -> None:
    """The version installed beside the interpreter the checkov script runs with (its ``#!`` line): what
    ``checkov --version`` prints, without the 5 s it takes to import all of checkov."""
    exe = checkov()
    with open(exe, "rb") as script:
        shebang = script.readline().decode().removeprefix("#!").split()
    result = subprocess.run([*shebang, "-c", "import importlib.metadata as m; print(m.version('checkov'))"],
                            capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == pins(CHECKOV)["checkov"]


def test_every_lock_file_is_compiled_from_its_input() -> None:
    for lock in LOCKS:
        source = lock.with_suffix(".in")
        assert source.exists(), f"{lock.name} has no {source.name}"
        header = lock.read_text().split("\n\n", 1)[0]
        assert "pip-compile" in header and source.name in header, f"{lock.name} was not compiled from {source.name}"
        pinned = pins(lock)
        for requirement in direct_requirements(source):
            assert canonicalize_name(requirement.name) in pinned, f"{requirement.name} missing from {lock.name}"


# --------------------------------------------------------------------------- Dependabot


def pinned_ecosystems(root: Path = ROOT) -> set[tuple[str, str]]:
    """(Dependabot ecosystem, directory) of every file under ``root`` that pins a version."""
    found: set[tuple[str, str]] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS]
        relative = Path(dirpath).relative_to(root).as_posix()
        rel = "/" if relative == "." else "/" + relative
        for name in filenames:
            path = Path(dirpath) / name
            if re.fullmatch(r"requirements.*\.(txt|in)", name):
                found.add(("pip", rel))
            elif name.endswith(".tf") and "required_providers" in path.read_text():
                found.add(("terraform", rel))
            elif rel == "/.github/workflows" and name.endswith((".yml", ".yaml")):
                found.add(("github-actions", "/"))
            elif name == "Dockerfile" or name.startswith("Dockerfile."):
                found.add(("docker", rel))
            elif name == "package.json":
                found.add(("npm", rel))
            elif name == "go.mod":
                found.add(("gomod", rel))
    return found


@pytest.fixture(scope="module")
def dependabot() -> dict[str, Any]:
    import yaml  # requirements-dev.txt's pyyaml: a stale virtualenv fails here, not at collection

    config = yaml.safe_load(DEPENDABOT.read_text())
    assert isinstance(config, dict)
    return config


def configured(config: dict[str, Any]) -> set[tuple[str, str]]:
    covered = set()
    for update in config["updates"]:
        directories = update.get("directories") or [update["directory"]]
        covered |= {(update["package-ecosystem"], "/" + d.strip("/") if d.strip("/") else "/") for d in directories}
    return covered


def test_dependabot_covers_every_pinned_ecosystem_and_directory(dependabot: dict[str, Any]) -> None:
    pinned = pinned_ecosystems()
    assert {("pip", "/"), ("terraform", "/terraform")} <= pinned  # what this repository pins today
    assert sorted(pinned - configured(dependabot)) == []


def test_dependabot_entries_are_valid_and_point_at_pinned_files(dependabot: dict[str, Any]) -> None:
    """The required keys of the options reference; no entry for a directory that pins nothing."""
    assert dependabot["version"] == 2
    for update in dependabot["updates"]:
        assert update["schedule"]["interval"] in {"daily", "weekly", "monthly", "quarterly", "semiannually",
                                                  "yearly", "cron"}, update
    assert sorted(configured(dependabot) - pinned_ecosystems()) == []


def test_the_ecosystem_discovery_finds_what_a_repository_would_add(tmp_path: Path) -> None:
    """Not a fixed list: a workflow, another Terraform module or a Dockerfile would each need an entry."""
    for rel, text in {
        "requirements.txt": "a==1\n",
        "terraform/versions.tf": "terraform { required_providers {} }\n",
        "terraform/outputs.tf": "output \"x\" { value = 1 }\n",
        "modules/net/main.tf": "terraform { required_providers {} }\n",
        ".github/workflows/ci.yml": "on: push\n",
        "tools/Dockerfile": "FROM python:3.12\n",
        ".venv/lib/requirements.txt": "ignored==1\n",
        "docs/readme.md": "requirements.txt\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert pinned_ecosystems(tmp_path) == {("pip", "/"), ("terraform", "/terraform"), ("terraform", "/modules/net"),
                                           ("github-actions", "/"), ("docker", "/tools")}


def test_terraform_provider_constraints_have_an_upper_bound() -> None:
    """Without a .terraform.lock.hcl, `terraform init` takes the newest version inside the constraint:
    each provider is held to one major version, so a new major comes only as a Dependabot pull request."""
    with (ROOT / "terraform" / "versions.tf").open() as handle:
        blocks = hcl2.load(handle)["terraform"]
    providers = {name: spec for block in blocks for group in block.get("required_providers", [])
                 for name, spec in group.items() if not name.startswith("__")}
    assert {"google", "archive"} <= set(providers)
    for name, spec in providers.items():
        constraint = spec["version"].strip('"')
        assert re.fullmatch(r"~>\s*\d+\.\d+", constraint) or "<" in constraint, f"{name}: {constraint!r} is unbounded"
