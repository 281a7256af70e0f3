"""What the deployed zip contains.

terraform/modules/looker_audit_export/source.tf zips the project root with
`archive_file`, excluding `local.source_excludes`, which source_excludes.tf
(same folder) derives from .gcloudignore (the one list of what is not
deployed). This module applies the same transformation and the same matching
(hashicorp/archive >= 2.5: doublestar globs on the path relative to the root; a
matching directory is skipped whole) to list the files of the zip, then checks
what is in and what is out.

If a `terraform` binary is present, the Terraform transformation itself is
evaluated with `terraform console` (no provider needed) and compared with the
Python one, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GCLOUDIGNORE = ROOT / ".gcloudignore"
TERRAFORM_DIR = ROOT / "terraform" / "modules" / "looker_audit_export"
EXCLUDES_TF = TERRAFORM_DIR / "source_excludes.tf"


# --- the transformation of terraform/source_excludes.tf, in Python ----------


def gcloudignore_patterns(text: str) -> list[str]:
    """Non-empty, non-comment lines, trimmed (local.gcloudignore_patterns)."""
    lines = (line.strip() for line in text.split("\n"))
    return [line for line in lines if line and not line.startswith("#")]


def source_excludes(text: str) -> list[str]:
    """The archive_file globs (local.source_excludes)."""
    globs = []
    for pattern in gcloudignore_patterns(text):
        path = pattern.removesuffix("/")
        glob = path.removeprefix("/") if "/" in path else f"**/{path}"
        globs.append(glob)
    excludes: list[str] = []
    for glob in globs:
        for item in (glob, f"{glob}/**"):
            if item not in excludes:  # distinct() keeps the first occurrence
                excludes.append(item)
    return excludes


# --- doublestar (bmatcuk/doublestar v4 PathMatch) in Python -----------------


def _segment_regex(segment: str) -> str:
    out = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1  # "**" inside a segment behaves like "*"
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = segment.find("]", i + 2)
            if end == -1:
                raise ValueError(f"unterminated character class in {segment!r}")
            body = segment[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        elif c in "{}":
            raise ValueError("brace alternatives are not used in .gcloudignore")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@functools.cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    segments = pattern.split("/")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            # zero or more whole path segments
            parts.append(".*" if last else "(?:[^/]+/)*")
        else:
            parts.append(_segment_regex(segment) + ("" if last else "/"))
    regex = "".join(parts)
    # "a/**" also matches "a" itself (doublestar: ** matches zero segments).
    if len(segments) > 1 and segments[-1] == "**":
        head = "".join(parts[:-1]).removesuffix("/")
        regex = f"(?:{head}|{regex})"
    return re.compile(regex)


def path_match(pattern: str, name: str) -> bool:
    return _glob_regex(pattern).fullmatch(name) is not None


def is_excluded(relpath: str, excludes: list[str]) -> bool:
    return any(path_match(glob, relpath) for glob in excludes if glob)


def bundle_files(root: Path, excludes: list[str]) -> list[str]:
    """Walk like archive_file: skip a matching directory whole, keep the rest."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        kept = []
        for d in sorted(dirnames):
            rel = (rel_dir / d).as_posix()
            if not is_excluded(rel, excludes):
                kept.append(d)
        dirnames[:] = kept
        for f in sorted(filenames):
            rel = (rel_dir / f).as_posix()
            if not is_excluded(rel, excludes):
                files.append(rel)
    return sorted(files)


# --- tests -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ignore_text() -> str:
    return GCLOUDIGNORE.read_text()


@pytest.fixture(scope="module")
def excludes(ignore_text: str) -> list[str]:
    return source_excludes(ignore_text)


@pytest.fixture(scope="module")
def files(excludes: list[str]) -> list[str]:
    return bundle_files(ROOT, excludes)


def test_doublestar_semantics():
    assert path_match("**/__pycache__", "__pycache__")
    assert path_match("**/__pycache__", "looker_audit_export/__pycache__")
    assert path_match("**/*.py[cod]", "a/b/c.pyc")
    assert not path_match("**/*.py[cod]", "a/b/c.py")
    assert path_match("tests", "tests")
    assert path_match("tests/**", "tests/unit/test_x.py")
    assert not path_match("tests", "looker_audit_export/tests")
    assert not path_match("*.md", "docs/deploy.md")
    assert path_match("**/*.md", "docs/deploy.md")
    assert not path_match("**/.git", "main.py")


def test_gcloudignore_uses_only_supported_syntax(ignore_text: str):
    for pattern in gcloudignore_patterns(ignore_text):
        assert not pattern.startswith("!"), f"negation is not supported by archive_file: {pattern}"
        assert not pattern.startswith("#!"), f"gcloud directives are not supported: {pattern}"
        assert "{" not in pattern and "}" not in pattern, pattern
        assert pattern.removesuffix("/") not in ("", "/"), pattern


def test_terraform_reads_the_same_list():
    """source_excludes.tf reads .gcloudignore; source.tf zips the root with it.

    The module is terraform/modules/looker_audit_export/: the project root is three folders up, also in the
    copy Terraform fetches for a git source with a //subdir (it downloads the whole repository).
    """
    excludes_tf = EXCLUDES_TF.read_text()
    assert re.search(r'repo_root\s*=\s*"\$\{path\.module\}/\.\./\.\./\.\."', excludes_tf)
    assert (TERRAFORM_DIR / "../../..").resolve() == ROOT
    assert 'file("${local.repo_root}/.gcloudignore")' in excludes_tf
    source_tf = (TERRAFORM_DIR / "source.tf").read_text()
    assert re.search(r"source_dir\s*=\s*local\.repo_root\b", source_tf)
    assert re.search(r"excludes\s*=\s*local\.source_excludes\b", source_tf)
    # The zip is written under the root configuration (terraform/ for the root a first-time user applies,
    # which is itself excluded), unless the caller gives another path.
    assert re.search(
        r'output_path\s*=\s*coalesce\(var\.source_archive_path, "\$\{path\.root\}/\.build/function-source\.zip"\)',
        source_tf,
    )


def test_terraform_transformation_matches_python(tmp_path: Path, excludes: list[str]):
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary: cannot evaluate source_excludes.tf")
    module = tmp_path / "terraform" / "modules" / "looker_audit_export"
    module.mkdir(parents=True)
    shutil.copy(EXCLUDES_TF, module / EXCLUDES_TF.name)
    shutil.copy(GCLOUDIGNORE, tmp_path / ".gcloudignore")
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    result = subprocess.run(
        [terraform, "console"],
        input="jsonencode(local.source_excludes)\n",
        cwd=module,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    from_terraform = json.loads(json.loads(result.stdout.strip().splitlines()[-1]))
    assert from_terraform == excludes


def test_bundle_contains_the_function(files: list[str]):
    assert "main.py" in files
    assert "requirements.txt" in files
    package = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "looker_audit_export").rglob("*.py"))
    assert package, "looker_audit_export/ has no .py file yet: nothing to deploy"
    missing = [p for p in package if p not in files]
    assert not missing, f"package files left out of the zip: {missing}"


@pytest.mark.parametrize(
    "prefix",
    ["tests/", "emulators/", "terraform/", ".git/", "benchmarks/", "scripts/", "docs/", ".ci/"],
)
def test_bundle_leaves_out(files: list[str], prefix: str):
    leaked = [f for f in files if f.startswith(prefix)]
    assert not leaked, f"{prefix} must not be deployed: {leaked[:5]}"


def test_bundle_leaves_out_dev_files(files: list[str]):
    forbidden = {"requirements-dev.txt", ".gcloudignore", ".gitignore"}
    assert [f for f in files if f.startswith("requirements")] == ["requirements.txt"], "only the deployed lock"
    assert not forbidden & set(files)
    assert not [f for f in files if "__pycache__/" in f or f.endswith((".pyc", ".pyo"))]
    assert not [f for f in files if f.split("/")[0] in {".venv", ".venv-checkov", "venv", ".state", "build"}]


def test_bundle_of_a_synthetic_tree(tmp_path: Path, excludes: list[str]):
    """The rules on a tree that has every case, whatever the checkout holds now."""
    for rel in [
        "main.py",
        "requirements.txt",
        "requirements-dev.txt",
        "requirements.in",
        "requirements-dev.in",
        "requirements-checkov.txt",
        "README.md",
        "looker_audit_export/__init__.py",
        "looker_audit_export/entries/events.py",
        "looker_audit_export/entries/__pycache__/events.cpython-312.pyc",
        "looker_audit_export/build/keep.py",
        "tests/test_x.py",
        "tests/fixtures/data.json",
        "emulators/looker.py",
        "terraform/main.tf",
        "terraform/.build/function-source.zip",
        "terraform/modules/looker_audit_export/.build/function-source.zip",
        "terraform/examples/private_looker/main.tf",
        ".git/HEAD",
        ".venv/bin/python",
        ".venv-checkov/bin/checkov",
        "benchmarks/bench.py",
        "scripts/tool.sh",
        "docs/deploy.md",
        ".ci/run",
        ".state/state.json",
        "build/lib/x.py",
    ]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert bundle_files(tmp_path, excludes) == [
        "looker_audit_export/__init__.py",
        "looker_audit_export/build/keep.py",  # /build/ is anchored to the root
        "looker_audit_export/entries/events.py",
        "main.py",
        "requirements.txt",
    ]
