"""The real `terraform validate`, `plan` and `apply` of terraform/, offline (opt-in: about a minute per case).

../shared/tfstandin serves the google 7.46.1, google-beta 8.7.0, archive and time provider schemas (rebuilt
from the prebuilt CDK bindings) over Terraform's plugin protocol, so the real terraform binary validates every
argument and block, evaluates count, for_each, preconditions and moved blocks, and plans what it would create,
move, change or destroy. Values the API would compute are placeholders; the provider's own validation
(formats, ConflictsWith) and anything Google would refuse at apply time are not reproduced.

    ../shared/tfstandin/setup.sh                      # once: lays out /tmp/tfschema (about a minute)
    TFSTANDIN=/tmp/tfschema .venv/bin/python -m pytest tests/test_terraform_plan.py -q

Without TFSTANDIN these tests are skipped; tests/test_terraform.py checks the parsed HCL in the default run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TF_ROOT = ROOT / "terraform"
STANDIN = os.environ.get("TFSTANDIN", "")
#: The layout before the module (issue 19): every resource at the root of terraform/.
PREVIOUS_LAYOUT = "c941af9"
MODULE = "module.looker_audit_export"

pytestmark = pytest.mark.skipif(
    not STANDIN or shutil.which("terraform") is None,
    reason="set TFSTANDIN=/tmp/tfschema after ../shared/tfstandin/setup.sh (needs a terraform binary)",
)

TWO_INSTANCES = {
    "project_id": "my-project-id",
    "looker_instances": {
        "prod": {"base_url": "https://mycompany.cloud.looker.com"},
        "dev": {"base_url": "https://dev.example.com:19999", "schedule": "*/30 * * * *"},
    },
}

#: Every optional resource of the previous layout on: long retention, the linked dataset, every alert, the
#: dashboard, the query history stream.
EVERYTHING_ON = TWO_INSTANCES | {
    "export_streams": ["events", "history"],
    "enable_long_retention": True,
    "enable_bigquery_linked_dataset": True,
    "notification_channels": ["projects/my-project-id/notificationChannels/1"],
    "alerts": {"large_exports": True, "downloads": True},
}


def _run_tf() -> Any:
    """tfstandin's run_tf.py, for the way it assigns resource types to providers."""
    spec = importlib.util.spec_from_file_location("run_tf", Path(STANDIN) / "fake" / "run_tf.py")
    assert spec and spec.loader, STANDIN
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _types(directories: list[Path]) -> dict[str, dict[str, list[str]]]:
    """{provider: {"resources": [...], "data": [...]}} over every folder of .tf files under these directories."""
    run_tf = _run_tf()
    merged: dict[str, dict[str, set[str]]] = {}
    for top in directories:
        for folder in sorted({p.parent for p in top.rglob("*.tf") if ".terraform" not in p.parts}):
            for provider, kinds in run_tf.types_by_provider(str(folder)).items():
                for kind, names in kinds.items():
                    merged.setdefault(provider, {"resources": set(), "data": set()})[kind].update(names)
    return {p: {k: sorted(v) for k, v in kinds.items()} for p, kinds in merged.items()}


@contextmanager
def standin(directories: list[Path], sockets: Path) -> Iterator[dict[str, str]]:
    """Start one stand-in provider per provider these configurations use; yield the environment for terraform."""
    run_tf = _run_tf()
    procs, reattach, logs = [], {}, {}
    try:
        for provider, types in _types(directories).items():
            sock, log = sockets / f"{provider}.sock", sockets / f"{provider}.log"
            logs[provider] = log
            with log.open("w") as out:
                procs.append(
                    subprocess.Popen(
                        [
                            str(Path(STANDIN) / "venv" / "bin" / "python"),
                            str(Path(STANDIN) / "fake" / "server.py"),
                            str(Path(STANDIN) / "cdktn" / run_tf.PACKAGES[provider] / "package"),
                            str(sock),
                            json.dumps(types),
                        ],
                        cwd=Path(STANDIN) / "fake",
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, "LIFETIME": "900"},
                    )
                )
            reattach[f"registry.terraform.io/hashicorp/{provider}"] = {
                "Protocol": "grpc",
                "ProtocolVersion": 5,
                "Pid": procs[-1].pid,
                "Test": True,
                "Addr": {"Network": "unix", "String": str(sock)},
            }
        deadline = time.monotonic() + 180
        while not all("READY" in log.read_text() for log in logs.values()):
            assert time.monotonic() < deadline, {p: log.read_text()[-500:] for p, log in logs.items()}
            assert all(p.poll() is None for p in procs), {p: log.read_text()[-2000:] for p, log in logs.items()}
            time.sleep(0.5)
        yield {
            **os.environ,
            "TF_REATTACH_PROVIDERS": json.dumps(reattach),
            "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1",
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def terraform(env: dict[str, str], cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if check:
        assert result.returncode == 0, f"terraform {' '.join(args)} in {cwd}:\n{result.stdout[-4000:]}\n{result.stderr}"
    return result


def copy_repo(dest: Path) -> Path:
    """terraform/ and what the module reads outside it (.gcloudignore), without local state: dest/terraform."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / ".gcloudignore", dest / ".gcloudignore")
    shutil.copytree(
        TF_ROOT,
        dest / "terraform",
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", ".build", "terraform.tfvars"),
    )
    return dest / "terraform"


def previous_layout(dest: Path, commit: str = PREVIOUS_LAYOUT) -> Path:
    """terraform/ as it was at `commit` (every resource at the root): dest/terraform."""
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:terraform/"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode != 0:
        pytest.skip(f"git history without {commit}: {listed.stderr.strip()}")
    (dest / "terraform").mkdir(parents=True)
    for name in listed.stdout.split():
        blob = subprocess.run(["git", "show", f"{commit}:terraform/{name}"], cwd=ROOT, capture_output=True, check=True)
        (dest / "terraform" / name).write_bytes(blob.stdout)
    blob = subprocess.run(["git", "show", f"{commit}:.gcloudignore"], cwd=ROOT, capture_output=True, check=True)
    (dest / ".gcloudignore").write_bytes(blob.stdout)
    return dest / "terraform"


def plan(env: dict[str, str], cwd: Path, variables: dict[str, Any]) -> dict[str, Any]:
    """`terraform plan` with these variables; the plan as `terraform show -json` gives it."""
    (cwd / "test.auto.tfvars.json").write_text(json.dumps(variables))
    terraform(env, cwd, "init", "-backend=false", "-input=false")
    terraform(env, cwd, "validate")
    terraform(env, cwd, "plan", "-input=false", "-refresh=false", "-out=plan.bin")
    return json.loads(terraform(env, cwd, "show", "-json", "plan.bin").stdout)


def changes(planned: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Managed resource address -> its actions, e.g. ("create",), ("no-op",), ("delete", "create")."""
    return {
        rc["address"]: tuple(rc["change"]["actions"])
        for rc in planned.get("resource_changes", [])
        if rc["mode"] == "managed"
    }


def state_addresses(state_file: Path) -> set[str]:
    """Every managed resource instance in a terraform.tfstate (v4), e.g. google_pubsub_topic.ticks["prod"]."""
    state = json.loads(state_file.read_text())
    out = set()
    for res in state["resources"]:
        if res["mode"] != "managed":
            continue
        base = f"{res['module']}.{res['type']}.{res['name']}" if "module" in res else f"{res['type']}.{res['name']}"
        for inst in res["instances"]:
            key = inst.get("index_key")
            out.add(base if key is None else f"{base}[{json.dumps(key)}]")
    return out


# --- the root a first-time user applies ----------------------------------------------


def test_root_plans_every_resource_in_the_module(tmp_path: Path):
    tf = copy_repo(tmp_path)
    with standin([tf], tmp_path) as env:
        planned = plan(env, tf, EVERYTHING_ON)
    acts = changes(planned)
    assert acts and all(a == ("create",) for a in acts.values()), acts
    assert all(a.startswith(f"{MODULE}.") for a in acts), "the root holds no resource of its own"
    for key in ("prod", "dev"):
        assert f'{MODULE}.google_cloudfunctions2_function.exporter["{key}"]' in acts
    assert f"{MODULE}.google_logging_project_bucket_config.audit[0]" in acts
    assert set(planned["planned_values"]["outputs"]) >= {"function_names", "secret_add_version_commands"}


# --- upgrading a deployment of the previous layout ---------------------------------------


@pytest.mark.parametrize("commit", [PREVIOUS_LAYOUT, "84a32e7~1"])
def test_an_existing_deployment_upgrades_in_place(tmp_path: Path, commit: str):
    """Apply the layout of `commit`, plan this one on its state: every old address moves, nothing is destroyed.

    c941af9 is the layout just before the module; 84a32e7~1 is older still (the run metrics were resources
    of their own with count), carried by the root's moved blocks and then the module's own.
    """
    old = previous_layout(tmp_path / "old", commit)
    new = copy_repo(tmp_path / "new")
    variables = EVERYTHING_ON if commit == PREVIOUS_LAYOUT else TWO_INSTANCES
    with standin([old, new], tmp_path) as env:
        (old / "test.auto.tfvars.json").write_text(json.dumps(variables))
        terraform(env, old, "init", "-backend=false", "-input=false")
        terraform(env, old, "apply", "-input=false", "-auto-approve", "-refresh=false")
        before = state_addresses(old / "terraform.tfstate")
        shutil.copy(old / "terraform.tfstate", new / "terraform.tfstate")
        planned = plan(env, new, variables)
    assert len(before) > 40 and all(not a.startswith("module.") for a in before), sorted(before)
    acts = changes(planned)
    moved = {rc["previous_address"]: rc["address"] for rc in planned["resource_changes"] if "previous_address" in rc}
    for critical in ("google_storage_bucket.state", 'google_secret_manager_secret.looker_credentials["prod"]'):
        assert moved[critical] == f"{MODULE}.{critical}"
        assert acts[f"{MODULE}.{critical}"] == ("no-op",), acts[f"{MODULE}.{critical}"]
    if commit != PREVIOUS_LAYOUT:
        # Older layouts differ in more than the addresses (the alerts were redesigned since); what matters
        # here is that the root's moved blocks and the module's own chain.
        for old_address, new_address in {
            "google_logging_metric.exporter_lag[0]": 'google_logging_metric.exporter_values["lag"]',
            "google_logging_metric.exporter_failures[0]": 'google_logging_metric.exporter_runs["failed"]',
            "google_logging_metric.exporter_runs[0]": 'google_logging_metric.exporter_runs["successful"]',
        }.items():
            assert moved[old_address] == f"{MODULE}.{new_address}"
            assert "delete" not in acts[f"{MODULE}.{new_address}"], acts[f"{MODULE}.{new_address}"]
        return
    destroyed = {a: act for a, act in acts.items() if "delete" in act}
    assert not destroyed, f"the upgrade would destroy or replace: {destroyed}"
    assert set(moved) == before, f"not moved: {sorted(before - set(moved))}"
    assert all(new_address == f"{MODULE}.{old_address}" for old_address, new_address in moved.items())
    assert acts[f"{MODULE}.google_logging_project_bucket_config.audit[0]"] == ("no-op",)
    # Nothing is created and nothing changes: the module is the same configuration.
    assert {a: act for a, act in acts.items() if act != ("no-op",)} == {}
