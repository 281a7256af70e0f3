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
import re
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


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The stand-in providers of every configuration under terraform/, shared by the tests of this file."""
    with standin([TF_ROOT], tmp_path_factory.mktemp("standin")) as environment:
        yield environment


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


def test_root_plans_every_resource_in_the_module(tmp_path: Path, env: dict[str, str]):
    tf = copy_repo(tmp_path)
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
def test_an_existing_deployment_upgrades_in_place(tmp_path: Path, commit: str, env: dict[str, str]):
    """Apply the layout of `commit`, plan this one on its state: every old address moves, nothing is destroyed.

    c941af9 is the layout just before the module; 84a32e7~1 is older still (the run metrics were resources
    of their own with count), carried by the root's moved blocks and then the module's own.
    """
    old = previous_layout(tmp_path / "old", commit)
    new = copy_repo(tmp_path / "new")
    variables = EVERYTHING_ON if commit == PREVIOUS_LAYOUT else TWO_INSTANCES
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


# --- the network options, the private example -------------------------------------------------


def function_after(planned: dict[str, Any], key: str) -> dict[str, Any]:
    """The planned service_config of one instance's function."""
    (rc,) = [
        rc
        for rc in planned["resource_changes"]
        if rc["type"] == "google_cloudfunctions2_function" and rc["index"] == key
    ]
    (service_config,) = rc["change"]["after"]["service_config"]
    return dict(service_config)


def call_module(dest: Path, arguments: str) -> Path:
    """A root configuration beside the module's copy that calls it with these arguments (HCL)."""
    tf = copy_repo(dest)
    root = tf / "every_option"
    root.mkdir()
    (root / "main.tf").write_text(
        'provider "google" {\n  project = "my-project-id"\n  region  = "us-central1"\n}\n'
        'provider "google-beta" {\n  project = "my-project-id"\n  region  = "us-central1"\n}\n'
        f'module "exporter" {{\n  source = "../modules/looker_audit_export"\n{arguments}\n}}\n'
        'output "egress_ip" {\n  value = module.exporter.egress_ip\n}\n'
    )
    return root


EVERY_OPTION = """
  project_id = "my-project-id"
  looker_instances = {
    private = { base_url = "https://10.1.2.3" }
    hosted  = { base_url = "https://mycompany.cloud.looker.com", query_timezone = "UTC" }
    public  = { base_url = "https://public.example.com", vpc_egress = "NONE" }
    ranges  = { base_url = "https://ranges.example.com", vpc_egress = "PRIVATE_RANGES_ONLY" }
  }
  vpc_egress = {
    network      = "looker-vpc"
    subnetwork   = "projects/host-project/regions/us-central1/subnetworks/looker-functions"
    network_tags = ["looker-export"]
    static_ip    = true
  }
  export_streams                 = ["events", "history"]
  enable_long_retention          = true
  enable_bigquery_linked_dataset = true
  notification_channels          = ["projects/my-project-id/notificationChannels/1"]
  alerts                         = { large_exports = true, downloads = true }
  source_archive_path            = "${path.root}/.build/exporter.zip"
"""


def test_the_module_with_every_option_on(tmp_path: Path, env: dict[str, str]):
    """Direct VPC egress on a Shared VPC subnetwork, the static address, and every optional resource."""
    root = call_module(tmp_path, EVERY_OPTION)
    planned = plan(env, root, {})
    acts = changes(planned)
    assert acts and all(a == ("create",) for a in acts.values())
    for name in ("google_compute_address", "google_compute_router", "google_compute_router_nat"):
        assert acts[f"module.exporter.{name}.egress[0]"] == ("create",)
    by_address = {rc["address"]: rc["change"]["after"] for rc in planned["resource_changes"]}
    nat = by_address["module.exporter.google_compute_router_nat.egress[0]"]
    assert nat["project"] == "host-project", "router, NAT and address live in the network's (host) project"
    assert nat["nat_ip_allocate_option"] == "MANUAL_ONLY"
    assert nat["source_subnetwork_ip_ranges_to_nat"] == "LIST_OF_SUBNETWORKS"
    assert [s["name"] for s in nat["subnetwork"]] == [
        "projects/host-project/regions/us-central1/subnetworks/looker-functions"
    ]
    assert by_address["module.exporter.google_compute_address.egress[0]"]["project"] == "host-project"
    # Each instance its own way out: the static address carries all traffic unless the instance says otherwise.
    expected = {"private": "ALL_TRAFFIC", "hosted": "ALL_TRAFFIC", "ranges": "PRIVATE_RANGES_ONLY"}
    for key, egress in expected.items():
        svc = function_after(planned, key)
        assert svc["direct_vpc_egress"] == f"VPC_EGRESS_{egress}", key
        (interface,) = svc["direct_vpc_network_interface"]
        assert interface["network"] == "looker-vpc" and interface["tags"] == ["looker-export"]
        assert interface["subnetwork"].endswith("/subnetworks/looker-functions")
        assert svc.get("vpc_connector") is None
    public = function_after(planned, "public")
    assert public["direct_vpc_network_interface"] == [] and public.get("direct_vpc_egress") is None
    invokers = {a for a in acts if ".runtime_invoker_direct_vpc[" in a}
    assert invokers == {f'module.exporter.google_cloud_run_v2_service_iam_member.runtime_invoker_direct_vpc["{k}"]'
                        for k in expected}
    apis = {a for a in acts if ".google_project_service.apis[" in a}
    assert 'module.exporter.google_project_service.apis["compute.googleapis.com"]' in apis
    assert 'module.exporter.google_project_service.apis["vpcaccess.googleapis.com"]' not in apis
    assert "egress_ip" in planned["planned_values"]["outputs"] or "egress_ip" in planned["output_changes"]
    # The module on its own validates too (no provider blocks needed).
    module = root.parent / "modules" / "looker_audit_export"
    terraform(env, module, "init", "-backend=false", "-input=false")
    terraform(env, module, "validate")


def test_the_module_works_with_for_each(tmp_path: Path, env: dict[str, str]):
    """No provider blocks in the module: a platform team can stamp it out with for_each (one stack per prefix)."""
    root = copy_repo(tmp_path) / "stacks"
    root.mkdir()
    (root / "main.tf").write_text(
        'provider "google" {\n  project = "my-project-id"\n  region  = "us-central1"\n}\n'
        'provider "google-beta" {\n  project = "my-project-id"\n  region  = "us-central1"\n}\n'
        'module "exporter" {\n'
        '  for_each            = toset(["audit-eu", "audit-us"])\n'
        '  source              = "../modules/looker_audit_export"\n'
        '  project_id          = "my-project-id"\n'
        '  name_prefix         = each.key\n'
        '  source_archive_path = "${path.root}/.build/${each.key}.zip"\n'
        '  looker_instances    = { prod = { base_url = "https://${each.key}.example.com" } }\n'
        "}\n"
    )
    acts = changes(plan(env, root, {}))
    for prefix in ("audit-eu", "audit-us"):
        assert acts[f'module.exporter["{prefix}"].google_cloudfunctions2_function.exporter["prod"]'] == ("create",)


def test_a_connector_instead_of_direct_vpc_egress(tmp_path: Path, env: dict[str, str]):
    root = call_module(
        tmp_path,
        'project_id = "my-project-id"\n'
        'looker_instances = { core = { base_url = "https://10.1.2.3" } }\n'
        'vpc_egress = { connector = "looker", egress = "ALL_TRAFFIC" }\n',
    )
    planned = plan(env, root, {})
    svc = function_after(planned, "core")
    assert svc["vpc_connector"] == "projects/my-project-id/locations/us-central1/connectors/looker"
    assert svc["vpc_connector_egress_settings"] == "ALL_TRAFFIC"
    assert svc["direct_vpc_network_interface"] == [] and svc.get("direct_vpc_egress") is None
    acts = changes(planned)
    assert 'module.exporter.google_project_service.apis["vpcaccess.googleapis.com"]' in acts
    assert not [a for a in acts if "google_compute_" in a or "runtime_invoker_direct_vpc" in a]


def test_all_traffic_without_private_google_access_stops_the_plan(tmp_path: Path, env: dict[str, str]):
    """The stand-in answers private_ip_google_access = false, as a subnetwork without it would."""
    root = call_module(
        tmp_path,
        'project_id = "my-project-id"\n'
        'looker_instances = { core = { base_url = "https://10.1.2.3" } }\n'
        'vpc_egress = { network = "looker-vpc", subnetwork = "looker-functions", egress = "ALL_TRAFFIC" }\n',
    )
    (root / "test.auto.tfvars.json").write_text("{}")
    terraform(env, root, "init", "-backend=false", "-input=false")
    failed = terraform(env, root, "plan", "-input=false", "-refresh=false", check=False)
    assert failed.returncode != 0
    message = " ".join(failed.stderr.replace("│", " ").split())
    assert "has no Private Google Access" in message, failed.stderr[-3000:]
    assert (
        "gcloud compute networks subnets update looker-functions --project=my-project-id --region=us-central1 "
        "--enable-private-ip-google-access"
    ) in message
    # Private ranges only: the API calls bypass the VPC, nothing to check.
    (root / "main.tf").write_text((root / "main.tf").read_text().replace('egress = "ALL_TRAFFIC"', ""))
    terraform(env, root, "plan", "-input=false", "-refresh=false")


def test_an_instance_through_a_vpc_that_is_not_there_stops_the_plan(tmp_path: Path, env: dict[str, str]):
    root = call_module(
        tmp_path,
        'project_id = "my-project-id"\n'
        'looker_instances = { core = { base_url = "https://10.1.2.3", vpc_egress = "ALL_TRAFFIC" } }\n',
    )
    (root / "test.auto.tfvars.json").write_text("{}")
    terraform(env, root, "init", "-backend=false", "-input=false")
    failed = terraform(env, root, "plan", "-input=false", "-refresh=false", check=False)
    message = " ".join(failed.stderr.replace("│", " ").split())
    assert failed.returncode != 0 and "looker_instances.core.vpc_egress is ALL_TRAFFIC, but vpc_egress" in message


def test_the_private_looker_example(tmp_path: Path, env: dict[str, str]):
    """examples/private_looker plans a function with VPC egress, a reserved address, a router and a NAT."""
    example = copy_repo(tmp_path) / "examples" / "private_looker"
    variables = {
        "project_id": "my-project-id",
        "looker_base_url": "https://looker.internal.example.com",
        "network": "looker-vpc",
        "subnetwork": "looker-functions",
    }
    example_tfvars = (TF_ROOT / "examples" / "private_looker" / "terraform.tfvars.example").read_text()
    assert set(re.findall(r"^([a-z_]+)\s+=", example_tfvars, re.M)) >= set(variables)
    planned = plan(env, example, variables)
    acts = changes(planned)
    module = "module.looker_audit_export"
    for name in ("google_compute_address", "google_compute_router", "google_compute_router_nat"):
        assert acts[f"{module}.{name}.egress[0]"] == ("create",)
    svc = function_after(planned, "core")
    assert svc["direct_vpc_egress"] == "VPC_EGRESS_ALL_TRAFFIC"
    assert [i["subnetwork"] for i in svc["direct_vpc_network_interface"]] == ["looker-functions"]
    assert "egress_ip" in planned["output_changes"]


def test_destroy_as_the_deploy_page_says(tmp_path: Path, env: dict[str, str]):
    """docs/deploy.md: the service agents' grants refuse to be destroyed until forgotten with `state rm`."""
    tf = copy_repo(tmp_path)
    (tf / "test.auto.tfvars.json").write_text(json.dumps(TWO_INSTANCES))
    terraform(env, tf, "init", "-backend=false", "-input=false")
    terraform(env, tf, "apply", "-input=false", "-auto-approve", "-refresh=false")
    refused = terraform(env, tf, "plan", "-destroy", "-input=false", "-refresh=false", check=False)
    assert refused.returncode != 0 and "prevent_destroy" in refused.stderr, refused.stderr[-2000:]
    deploy_page = (ROOT / "docs" / "deploy.md").read_text()
    (address,) = re.findall(r"^terraform state rm '([^']+)'$", deploy_page, re.M)
    terraform(env, tf, "state", "rm", address)
    assert not {a for a in state_addresses(tf / "terraform.tfstate") if "service_agents" in a}
    terraform(env, tf, "plan", "-destroy", "-input=false", "-refresh=false")
