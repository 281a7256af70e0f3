"""Static checks of terraform/ (no provider download: parsed with python-hcl2).

The resources are in the module terraform/modules/looker_audit_export/ (TF); terraform/ (TF_ROOT) is the root
a first-time user applies: provider blocks, a call of the module that passes every variable, and the moved
blocks of an upgrade. tests/test_terraform_plan.py runs the real `terraform validate` and `plan` (opt-in).

They assert what the deployment issue asks for: every resource exists and is
wired to the others, IAM grants nothing beyond the listed roles, the function
gets the whole environment contract, no secret value goes through Terraform,
and checkov finds nothing (with inline, reasoned skips only).

Several Looker instances: every per-instance resource iterates the same map
(local.instances) and refers to the other resources of the same key, so each
instance has its own tick, function, secret and cursor. Long retention,
security signals and exporter health are checked the same way, and the
locals-only files (instances.tf, signals.tf) are evaluated with `terraform
console` where a binary exists (no provider download needed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
from conftest import checkov
from docs_pages import docs_text

ROOT = Path(__file__).resolve().parent.parent
TF_ROOT = ROOT / "terraform"
TF = TF_ROOT / "modules" / "looker_audit_export"
MODULE_CALL = "looker_audit_export"

# scripts/draw_dashboard.py evaluates the locals-only files with `terraform console`; the tests use the same code.
_spec = importlib.util.spec_from_file_location("draw_dashboard", ROOT / "scripts" / "draw_dashboard.py")
assert _spec and _spec.loader
draw_dashboard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(draw_dashboard)
LOCALS_ONLY: tuple[str, ...] = draw_dashboard.LOCALS_ONLY
_spec = importlib.util.spec_from_file_location("module_readme", ROOT / "scripts" / "module_readme.py")
assert _spec and _spec.loader
module_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(module_readme)

# The function's environment contract (see README / looker_audit_export.config).
CONTRACT_ENV = {
    "GOOGLE_CLOUD_PROJECT",
    "LOOKER_BASE_URL",
    "LOOKER_CREDENTIALS_SECRET",
    "LOG_NAME",
    "STATE_URI",
    "INITIAL_LOOKBACK_MINUTES",
    "SETTLE_SECONDS",
    "LOOKER_VERIFY_SSL",
    "RUN_BUDGET_SECONDS",
    "MAX_MESSAGE_AGE_SECONDS",
    "PAGE_SIZE",
    "LOOKER_TIMEOUT_SECONDS",
    "EXPORT_STREAMS",
    "HISTORY_LOG_NAME",
    "HISTORY_INCLUDE_OWN_QUERIES",
}

# Set per instance only when given (local.instances[*].optional_env, merged into the environment).
OPTIONAL_ENV = {"LOOKER_QUERY_TIMEZONE"}

REQUIRED_APIS = {
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "cloudscheduler.googleapis.com",
    "secretmanager.googleapis.com",
    "logging.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
}

PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}



# --- loading and normalising python-hcl2 output (7.x and 8.x) ---------------


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r'\\(["\\])', r"\1", value[1:-1])
    return value


_HCL2_META = ("__is_block__", "__comments__", "__inline_comments__")


def _norm(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _norm(v) for k, v in node.items() if k not in _HCL2_META}
    if isinstance(node, list):
        return [_norm(v) for v in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


def expr(value: Any) -> str:
    """An expression without its ${...} wrapper: "${var.x}" -> "var.x"."""
    assert isinstance(value, str), value
    m = re.fullmatch(r"\$\{(.*)\}", value, re.S)
    if m and "${" not in m.group(1):
        return m.group(1).strip()
    return value


def block(value: Any) -> dict:
    """A nested block: python-hcl2 gives a list of one dict."""
    if isinstance(value, list):
        assert len(value) == 1, value
        value = value[0]
    assert isinstance(value, dict), value
    return value


class Config:
    def __init__(self, directory: Path):
        self.resources: dict[str, dict[str, dict]] = {}
        self.data: dict[str, dict[str, dict]] = {}
        self.variables: dict[str, dict] = {}
        self.outputs: dict[str, dict] = {}
        self.locals: dict[str, Any] = {}
        self.moved: list[dict] = []
        self.terraform: list[dict] = []
        self.modules: dict[str, dict] = {}
        self.providers: list[dict] = []
        for path in sorted(directory.glob("*.tf")):
            with path.open() as fh:
                doc = _norm(hcl2.load(fh))
            for item in doc.get("resource", []):
                for rtype, named in item.items():
                    for name, body in named.items():
                        assert name not in self.resources.get(rtype, {}), f"duplicate {rtype}.{name}"
                        self.resources.setdefault(rtype, {})[name] = body
            for item in doc.get("data", []):
                for dtype, named in item.items():
                    for name, body in named.items():
                        self.data.setdefault(dtype, {})[name] = body
            for item in doc.get("variable", []):
                self.variables.update(item)
            for item in doc.get("output", []):
                self.outputs.update(item)
            for item in doc.get("locals", []):
                self.locals.update(item)
            self.moved.extend(doc.get("moved", []))
            self.terraform.extend(doc.get("terraform", []))
            for item in doc.get("module", []):
                self.modules.update(item)
            self.providers.extend(doc.get("provider", []))

    def one(self, rtype: str) -> tuple[str, dict]:
        named = self.resources.get(rtype, {})
        assert len(named) == 1, f"expected exactly one {rtype}, found {sorted(named)}"
        return next(iter(named.items()))

    def resolve(self, value: Any) -> Any:
        """Follow `local.x` references."""
        if isinstance(value, str):
            m = re.fullmatch(r"local\.([A-Za-z0-9_]+)", expr(value))
            if m:
                return self.resolve(self.locals[m.group(1)])
        return value


@pytest.fixture(scope="module")
def cfg() -> Config:
    return Config(TF)


@pytest.fixture(scope="module")
def root() -> Config:
    return Config(TF_ROOT)


EACH = "[each.key]"


def sa_ref(member: str) -> str:
    """'serviceAccount:${google_service_account.x.email}' -> 'x' ('x[each.key]' for a per-instance one).

    A Google service agent created here (google_project_service_identity.agents["svc"]) -> 'agent:svc'.
    """
    m = re.fullmatch(r'serviceAccount:\$\{google_project_service_identity\.agents\["([a-z.]+)"\]\.email\}', member)
    if m:
        return f"agent:{m.group(1)}"
    m = re.fullmatch(r"serviceAccount:\$\{google_service_account\.([a-z0-9_]+(?:\[each\.key\])?)\.email\}", member)
    if m:
        return m.group(1)
    m = re.fullmatch(r"\$\{google_service_account\.([a-z0-9_]+(?:\[each\.key\])?)\.member\}", member)
    assert m, f"member is not one of this stack's service accounts: {member}"
    return m.group(1)


def sa_email_ref(value: str) -> str:
    m = re.fullmatch(r"google_service_account\.([a-z0-9_]+(?:\[each\.key\])?)\.(email|id|name)", expr(value))
    assert m, f"not a reference to a google_service_account: {value}"
    return m.group(1)


def per_instance(res: dict) -> bool:
    """The resource has one copy per Looker instance."""
    return expr(res.get("for_each", "")) == "local.instances"


def per_vpc_instance(res: dict) -> bool:
    """One copy per Looker instance whose function uses Direct VPC egress (network.tf), none without it."""
    return expr(res.get("for_each", "")) == "local.direct_vpc_instances"


# --- layout -----------------------------------------------------------------


def test_layout():
    for name in (
        "versions.tf",
        "variables.tf",
        "main.tf",
        "instances.tf",
        "retention.tf",
        "alerts.tf",
        "signals.tf",
        "health.tf",
        "dashboard.tf",
        "dashboard_layout.tf",
        "outputs.tf",
        "README.md",
    ):
        assert (TF / name).is_file(), f"{TF.relative_to(ROOT)}/{name} is missing"
    for name in ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "moved.tf", "terraform.tfvars.example"):
        assert (TF_ROOT / name).is_file(), f"terraform/{name} is missing"


def test_locals_only_files_hold_only_locals():
    """instances.tf, signals.tf, health.tf and dashboard_layout.tf are evaluated alone by `terraform console`."""
    for name in (*(n for n in LOCALS_ONLY if n != "variables.tf"), "source_excludes.tf"):
        with (TF / name).open() as fh:
            doc = _norm(hcl2.load(fh))
        assert set(doc) <= {"locals"}, f"{name} may only hold locals: {sorted(doc)}"


def test_versions_pinned(cfg: Config):
    terraform = cfg.terraform[0]
    assert terraform.get("required_version", "").startswith(">=")
    providers = block(terraform["required_providers"])
    assert providers["google"]["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+", providers["google"]["version"]), "google pinned to a major"
    assert providers["archive"]["source"] == "hashicorp/archive"
    # excludes globs need archive >= 2.5
    m = re.fullmatch(r"~> 2\.(\d+)", providers["archive"]["version"])
    assert m and int(m.group(1)) >= 5
    # time_sleep (the waits) and google_project_service_identity (beta only), same major as google.
    assert providers["time"]["source"] == "hashicorp/time"
    assert re.fullmatch(r"~> 0\.(\d+)", providers["time"]["version"])
    assert providers["google-beta"] == providers["google"] | {"source": "hashicorp/google-beta"}


# --- the reusable module and the root that calls it ---------------------------------


def test_module_has_no_provider_blocks(cfg: Config):
    """A module with its own provider configuration cannot be used with count, for_each or depends_on."""
    assert not cfg.providers, "provider blocks belong in the root (terraform/versions.tf), not in the module"
    assert len(cfg.terraform) == 1 and set(cfg.terraform[0]) <= {"required_version", "required_providers"}
    assert not cfg.modules


def test_root_is_a_thin_call_of_the_module(root: Config, cfg: Config):
    assert not root.resources and not root.data and not root.locals, "the root only calls the module"
    assert {next(iter(p)) for p in root.providers} == {"google", "google-beta"}
    for provider in root.providers:
        (body,) = provider.values()
        assert expr(body["project"]) == "var.project_id" and expr(body["region"]) == "var.region"
    # The same required_providers as the module: one set of versions.
    assert block(root.terraform[0]["required_providers"]) == block(cfg.terraform[0]["required_providers"])
    assert root.terraform[0]["required_version"] == cfg.terraform[0]["required_version"]
    assert list(root.modules) == [MODULE_CALL]
    call = root.modules[MODULE_CALL]
    assert call["source"] == "./modules/looker_audit_export"
    # Every variable of the module is passed through under its own name, and nothing else.
    passed = {k: expr(v) for k, v in call.items() if k != "source"}
    assert passed == {name: f"var.{name}" for name in cfg.variables}


EXAMPLE = TF_ROOT / "examples" / "private_looker"


def test_the_private_looker_example_calls_the_module(cfg: Config):
    """examples/private_looker: a private-IP Looker through the VPC, with the static address; a thin call too.

    tests/test_terraform_plan.py plans it (opt-in): a function with VPC egress, an address, a router, a NAT.
    """
    example = Config(EXAMPLE)
    assert not example.resources and not example.data and not example.moved
    assert {next(iter(p)) for p in example.providers} == {"google", "google-beta"}
    assert block(example.terraform[0]["required_providers"]) == block(cfg.terraform[0]["required_providers"])
    (call,) = example.modules.values()
    assert call["source"] == "../../modules/looker_audit_export", "the example calls the module by relative path"
    assert set(call) - {"source"} <= set(cfg.variables)
    vpc = call["vpc_egress"]
    assert vpc["static_ip"] is True and {"network", "subnetwork"} <= set(vpc)
    assert "egress_ip" in example.outputs and "module." in example.outputs["egress_ip"]["value"]
    for name, var in example.variables.items():
        assert var.get("description", "").strip(), name
    with (EXAMPLE / "terraform.tfvars.example").open() as fh:
        tfvars = _norm(hcl2.load(fh))
    assert set(tfvars) <= set(example.variables)
    assert {n for n, v in example.variables.items() if "default" not in v} <= set(tfvars)


def test_root_variables_are_the_module_variables():
    """The same terraform.tfvars works in the root and in a direct call of the module."""
    assert (TF_ROOT / "variables.tf").read_text() == (TF / "variables.tf").read_text(), (
        "run `cp terraform/modules/looker_audit_export/variables.tf terraform/variables.tf`"
    )


def test_root_outputs_are_the_module_outputs(root: Config, cfg: Config):
    assert list(root.outputs) == list(cfg.outputs)
    for name, out in root.outputs.items():
        assert expr(out["value"]) == f"module.{MODULE_CALL}.{name}", name
        assert out["description"] == cfg.outputs[name]["description"], name


#: Resources that came with the module or after it: no deployment of the previous layout (c941af9) has them,
#: so they need no moved block. A resource added to the module later goes here too.
NEW_IN_MODULE = {
    "google_compute_address.egress",
    "google_compute_router.egress",
    "google_compute_router_nat.egress",
    "google_cloud_run_v2_service_iam_member.runtime_invoker_direct_vpc",
}


def test_moved_blocks_carry_every_resource_of_the_previous_layout(root: Config, cfg: Config):
    """An existing deployment upgrades in place: each old address moves into the module, none is left behind.

    tests/test_terraform_plan.py applies the previous layout and plans this one on its state (opt-in).
    """
    moves = {expr(m["from"]): expr(m["to"]) for m in root.moved}
    assert len(moves) == len(root.moved), "one moved block per address"
    module_resources = {f"{t}.{n}" for t, named in cfg.resources.items() for n in named}
    # Addresses older than the previous layout, which the module's own moved blocks carry on (alerts.tf):
    # the root moves them into the module first.
    older = {re.sub(r"\[[^]]*\]$", "", expr(m["from"])) for m in cfg.moved} - module_resources
    assert older
    for old, new in moves.items():
        assert new == f"module.{MODULE_CALL}.{old}", f"{old} must keep its type and name in the module: {new}"
    assert set(moves) == (module_resources - NEW_IN_MODULE) | older, (
        f"missing moved blocks: {sorted(((module_resources - NEW_IN_MODULE) | older) - set(moves))}; "
        f"moved blocks for nothing: {sorted(set(moves) - module_resources - older)}"
    )
    assert {"google_storage_bucket.state", "google_logging_project_bucket_config.audit"} <= set(moves)
    assert "google_secret_manager_secret.looker_credentials" in moves


def test_module_readme_lists_every_input_and_output(cfg: Config):
    """Like terraform-google-modules: an Inputs table (name, description, type, default, required) and Outputs."""
    readme = (TF / "README.md").read_text()
    assert readme == module_readme.render(readme), "run `python scripts/module_readme.py`"
    inputs = readme.split("## Inputs", 1)[1].split("## Outputs", 1)[0]
    outputs = readme.split("## Outputs", 1)[1]
    rows = dict(re.findall(r"^\| ([a-z0-9_]+) \|(.*)\|$", inputs, re.M))
    assert set(rows) == set(cfg.variables), set(rows) ^ set(cfg.variables)
    for name, var in cfg.variables.items():
        required = rows[name].rsplit("|", 1)[1].strip()
        assert required == ("no" if "default" in var else "yes"), (name, required)
        assert module_readme.one_line(var["description"]) in rows[name], name
    listed = set(re.findall(r"^\| ([a-z0-9_]+) \|", outputs, re.M))
    assert listed == set(cfg.outputs), listed ^ set(cfg.outputs)


def test_variables_documented_and_typed(cfg: Config):
    assert cfg.variables
    for name, var in cfg.variables.items():
        assert var.get("description", "").strip(), f"variable {name} has no description"
        assert "type" in var, f"variable {name} has no type"
    for name in (
        "project_id",
        "region",
        "name_prefix",
        "looker_instances",
        "schedule",
        "log_name",
        "run_budget_seconds",
        "retention_days",
        "notification_channels",
        "exporter_max_lag_seconds",
    ):
        assert name in cfg.variables, name
        assert cfg.variables[name].get("validation"), f"variable {name} has no validation"
    assert cfg.variables["schedule"]["default"] == "*/10 * * * *"
    assert cfg.variables["log_name"]["default"] == "looker_system_activity_logs"
    assert "looker_base_url" not in cfg.variables, "replaced by looker_instances"
    conditions = " ".join(v["condition"] for v in cfg.variables["looker_instances"]["validation"])
    assert "https://" in conditions
    assert "distinct(" in conditions, "two keys on one Looker host must be refused"
    assert "default" not in cfg.variables["looker_instances"], "at least one instance must be given"


def test_tfvars_example_only_sets_declared_variables(cfg: Config):
    with (TF_ROOT / "terraform.tfvars.example").open() as fh:
        example = _norm(hcl2.load(fh))
    assert {"project_id", "looker_instances"} <= set(example)
    assert set(example) <= set(cfg.variables)
    instances = example["looker_instances"]
    assert instances and all(i["base_url"].startswith("https://") for i in instances.values())
    # Every commented-out optional line names a declared variable.
    text = (TF_ROOT / "terraform.tfvars.example").read_text()
    for name in re.findall(r"^# ([a-z_]+)\s+=", text, re.M):
        assert name in cfg.variables, f"terraform.tfvars.example mentions unknown variable {name}"


# --- APIs ---------------------------------------------------------------------


def test_required_apis_enabled(cfg: Config):
    _, svc = cfg.one("google_project_service")
    assert expr(svc["for_each"]) == "local.apis"
    listed = set(re.findall(r"[a-z]+\.googleapis\.com", str(cfg.locals["apis"])))
    assert listed >= REQUIRED_APIS | {"monitoring.googleapis.com", "bigquery.googleapis.com"}, REQUIRED_APIS - listed
    assert svc["disable_on_destroy"] is False


# --- several Looker instances ---------------------------------------------------

PER_INSTANCE = {
    "google_pubsub_topic": "ticks",
    "google_cloud_scheduler_job": "tick",
    "google_cloudfunctions2_function": "exporter",
    "google_secret_manager_secret": "looker_credentials",
    "google_service_account": "runtime",
    "google_project_iam_member": "runtime_log_writer",
    "google_secret_manager_secret_iam_member": "runtime_secret_accessor",
    "google_storage_bucket_iam_member": "runtime_state_object_user",
    "google_cloud_run_v2_service_iam_member": "trigger_invoker",
}

SHARED = {
    "google_service_account": {"trigger", "build"},
    "google_storage_bucket": {"state", "source"},
    "google_artifact_registry_repository": {"functions"},
    "google_service_account_iam_member": {"pubsub_agent_token_creator"},
    "google_project_iam_member": {"build_log_writer", "build_staging_viewer"},
    "time_sleep": {"iam_propagation", "metrics"},
}


def test_per_instance_resources_iterate_the_instances(cfg: Config):
    for rtype, name in PER_INSTANCE.items():
        res = cfg.resources[rtype][name]
        assert per_instance(res), f"{rtype}.{name} must have for_each = local.instances"
    for rtype, names in SHARED.items():
        for name in names:
            assert "for_each" not in cfg.resources[rtype][name] and "count" not in cfg.resources[rtype][name], (
                f"{rtype}.{name} is shared by the instances"
            )
    assert cfg.locals["instances"].startswith("${{for key, inst in var.looker_instances : key =>")


def test_per_instance_names_contain_the_key(cfg: Config):
    names = {
        ("google_pubsub_topic", "ticks", "name"),
        ("google_cloud_scheduler_job", "tick", "name"),
        ("google_secret_manager_secret", "looker_credentials", "secret_id"),
        ("google_service_account", "runtime", "account_id"),
    }
    for rtype, name, attr in names:
        value = cfg.resources[rtype][name][attr]
        assert value.startswith("${var.name_prefix}-${each.key}-"), (rtype, value)
    fn = cfg.resources["google_cloudfunctions2_function"]["exporter"]
    assert expr(fn["name"]) == "each.value.function_name"
    assert 'function_name            = "${var.name_prefix}-${key}-export"' in (TF / "instances.tf").read_text()
    # The service account ID limit (30 characters) is checked at plan time.
    sa = cfg.resources["google_service_account"]["runtime"]
    pre = block(block(sa["lifecycle"])["precondition"])
    assert pre["condition"] == '${length("${var.name_prefix}-${each.key}-run") <= 30}'


def test_scheduler_publishes_to_the_function_topic(cfg: Config):
    topic_name, _ = cfg.one("google_pubsub_topic")
    _, job = cfg.one("google_cloud_scheduler_job")
    assert expr(job["schedule"]) == "each.value.schedule"
    assert "schedule                 = coalesce(inst.schedule, var.schedule)" in (TF / "instances.tf").read_text()
    target = block(job["pubsub_target"])
    # Each job publishes to the topic of its own instance ...
    assert expr(target["topic_name"]) == f"google_pubsub_topic.{topic_name}{EACH}.id"
    data = target["data"]
    m = re.fullmatch(r"\$\{base64encode\(\"(.+)\"\)\}", data)
    assert m and m.group(1), f"scheduler message must be non-empty: {data}"

    _, fn = cfg.one("google_cloudfunctions2_function")
    trigger = block(fn["event_trigger"])
    # ... and each function is triggered by the topic of its own instance.
    assert expr(trigger["pubsub_topic"]) == expr(target["topic_name"])
    assert trigger["event_type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"


def test_function_settings(cfg: Config):
    _, fn = cfg.one("google_cloudfunctions2_function")
    build = block(fn["build_config"])
    assert build["entry_point"] == "export_system_activity"
    runtime = build["runtime"]
    if expr(runtime).startswith("var."):
        runtime = cfg.variables[expr(runtime)[4:]]["default"]
    assert re.fullmatch(r"python3(1[2-9])", runtime), runtime

    svc = block(fn["service_config"])
    assert svc["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert svc["max_instance_count"] == 1
    assert svc.get("min_instance_count", 0) == 0
    assert svc.get("max_instance_request_concurrency", 1) == 1
    # timeout = run budget + margin; the budget is validated so that it fits 540 s.
    assert re.fullmatch(r"var\.run_budget_seconds \+ (\d+)", expr(svc["timeout_seconds"]))
    margin = int(expr(svc["timeout_seconds"]).rsplit("+", 1)[1])
    budget = cfg.variables["run_budget_seconds"]
    assert budget["default"] + margin <= 540
    assert f"<= {540 - margin}" in block(budget["validation"])["condition"]


def function_env(cfg: Config) -> dict[str, str]:
    """The variables every function gets: the literal map merged with each instance's optional_env."""
    _, fn = cfg.one("google_cloudfunctions2_function")
    raw = block(fn["service_config"])["environment_variables"]
    m = re.fullmatch(r"\$\{merge\((\{.*\}), each\.value\.optional_env\)\}", raw, re.S)
    assert m, f"the environment must be merge({{...}}, each.value.optional_env): {raw}"
    env = _norm(hcl2.loads(f"env = {m.group(1)}\n"))["env"]
    assert isinstance(env, dict)
    return env


def _config_env_names() -> set[str]:
    """Every environment variable name looker_audit_export/config.py mentions ("LOOKER_BASE_URL", ...)."""
    source = (ROOT / "looker_audit_export" / "config.py").read_text()
    return set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', source))


def test_function_environment_covers_the_contract(cfg: Config):
    env = function_env(cfg)
    assert set(env) >= CONTRACT_ENV, CONTRACT_ENV - set(env)
    assert expr(env["GOOGLE_CLOUD_PROJECT"]) == "var.project_id"
    assert expr(env["LOG_NAME"]) == "var.log_name", "every instance writes to the same log"
    assert expr(env["LOOKER_BASE_URL"]) == "each.value.base_url"
    secret_name, _ = cfg.one("google_secret_manager_secret")
    assert env["LOOKER_CREDENTIALS_SECRET"] == (
        f"${{google_secret_manager_secret.{secret_name}{EACH}.id}}/versions/latest"
    ), "each function reads its own instance's secret"
    for key in CONTRACT_ENV - {"GOOGLE_CLOUD_PROJECT", "LOOKER_CREDENTIALS_SECRET", "STATE_URI"}:
        assert "var." in env[key] or "each.value." in env[key], f"{key} should come from a variable: {env[key]}"
    # Every variable Terraform sets, always or per instance, is one config.py reads.
    config_names = _config_env_names()
    assert config_names >= OPTIONAL_ENV and not OPTIONAL_ENV & set(env), OPTIONAL_ENV
    assert set(env) <= config_names, set(env) - config_names


def test_optional_env_is_set_only_when_given(tmp_path: Path):
    tfvars = (
        'project_id = "my-project-id"\n'
        "looker_instances = {\n"
        '  prod = { base_url = "https://mycompany.cloud.looker.com" }\n'
        '  eu   = { base_url = "https://eu.example.com", query_timezone = "Europe/Berlin" }\n'
        "}\n"
    )
    optional = _console(tmp_path, "{ for k, i in local.instances : k => i.optional_env }", tfvars)
    assert optional == {"prod": {}, "eu": {"LOOKER_QUERY_TIMEZONE": "Europe/Berlin"}}
    assert set(optional["eu"]) <= OPTIONAL_ENV


def test_each_instance_has_its_own_cursor(cfg: Config):
    """STATE_URI = gs://<state bucket>/<key>/state.json: one object per instance, under its key."""
    state_uri = function_env(cfg)["STATE_URI"]
    assert state_uri == "gs://${google_storage_bucket.state.name}/${each.key}/state.json", state_uri
    # The runtime account of an instance may only touch objects under its key.
    grant = cfg.resources["google_storage_bucket_iam_member"]["runtime_state_object_user"]
    assert per_instance(grant)
    assert expr(grant["bucket"]) == "google_storage_bucket.state.name"
    assert sa_ref(grant["member"]) == f"runtime{EACH}"
    condition = block(grant["condition"])
    assert condition["expression"] == (
        'resource.name.startsWith("projects/_/buckets/${google_storage_bucket.state.name}/objects/${each.key}/")'
    )
    object_path = state_uri.removeprefix("gs://${google_storage_bucket.state.name}/")
    found = re.search(r"/objects/(.*)\"\)$", condition["expression"])
    assert found, condition["expression"]
    prefix = found.group(1)
    assert object_path.startswith(prefix) and prefix.endswith("/"), "a trailing / keeps prod/ apart from prod-eu/"


def test_function_source_is_the_hashed_zip(cfg: Config):
    _, fn = cfg.one("google_cloudfunctions2_function")
    src = block(block(block(fn["build_config"])["source"])["storage_source"])
    m = re.fullmatch(r"google_storage_bucket_object\.([a-z_]+)\.name", expr(src["object"]))
    assert m, f"the function must build from this stack's uploaded object: {src['object']}"
    obj = cfg.resources["google_storage_bucket_object"][m.group(1)]
    archive_name, archive = next(iter(cfg.data["archive_file"].items()))
    assert archive["type"] == "zip"
    assert f"data.archive_file.{archive_name}.output_md5" in obj["name"] or (
        f"data.archive_file.{archive_name}.output_sha256" in obj["name"]
    ), "object name must change with the zip's hash"
    assert expr(obj["source"]) == f"data.archive_file.{archive_name}.output_path"
    assert expr(src["bucket"]) == expr(obj["bucket"])
    assert expr(archive["excludes"]) == "local.source_excludes"


def test_buckets_are_private_and_uniform(cfg: Config):
    buckets = cfg.resources["google_storage_bucket"]
    assert {"source", "state"} <= set(buckets)
    for name, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["public_access_prevention"] == "enforced", name


# --- IAM ------------------------------------------------------------------------


#: The attribute that names what each kind of IAM grant is on.
IAM_TARGETS = {
    "google_project_iam_member": "project",
    "google_secret_manager_secret_iam_member": "secret_id",
    "google_storage_bucket_iam_member": "bucket",
    "google_cloud_run_v2_service_iam_member": "name",
    "google_cloud_run_service_iam_member": "service",
    "google_artifact_registry_repository_iam_member": "repository",
    "google_service_account_iam_member": "service_account_id",
}


def _grants(cfg: Config) -> set[tuple[str, str, str, str]]:
    """(sa, role, resource type, target) for every IAM grant in the stack."""
    grants = set()
    for rtype, named in cfg.resources.items():
        if not re.search(r"_iam_(member|binding|policy|audit_config)$", rtype):
            continue
        assert rtype.endswith("_iam_member"), f"{rtype}: only additive *_iam_member grants are allowed"
        for name, res in named.items():
            role = res["role"]
            member = res["member"]
            assert rtype in IAM_TARGETS, f"unexpected IAM resource {rtype}.{name}"
            target = expr(res[IAM_TARGETS[rtype]])
            if "condition" in res:
                target += " if " + block(res["condition"])["expression"]
            if expr(res.get("for_each", "")) == "local.service_agent_roles":
                # One grant per service agent, each of the role in that table.
                assert member == "serviceAccount:${google_project_service_identity.agents[each.key].email}"
                assert expr(role) == "each.value"
                for service, agent_role in cfg.locals["service_agent_roles"].items():
                    grants.add((f"agent:{service}", agent_role, rtype, target))
                continue
            assert "@gcp-sa-" not in member, "a service agent is named by its google_project_service_identity"
            who = sa_ref(member)
            # A per-instance grant must iterate the instances, or [each.key] would not exist.
            each_instance = per_instance(res) or per_vpc_instance(res)
            assert each_instance == (EACH in who or EACH in target), f"{rtype}.{name}"
            if per_vpc_instance(res):
                who += " with Direct VPC egress"
            grants.add((who, role, rtype, target))
    return grants


STAGING_CONDITION = (
    'resource.name == "projects/_/buckets/${local.gcf_staging_bucket}" || '
    'resource.name.startsWith("projects/_/buckets/${local.gcf_staging_bucket}/objects/")'
)

CURSOR_CONDITION = (
    'resource.name.startsWith("projects/_/buckets/${google_storage_bucket.state.name}/objects/${each.key}/")'
)

EXPECTED_GRANTS = {
    ("runtime[each.key]", "roles/logging.logWriter", "google_project_iam_member", "var.project_id"),
    (
        "runtime[each.key]",
        "roles/secretmanager.secretAccessor",
        "google_secret_manager_secret_iam_member",
        "google_secret_manager_secret.looker_credentials[each.key].secret_id",
    ),
    (
        "runtime[each.key]",
        "roles/storage.objectUser",
        "google_storage_bucket_iam_member",
        f"google_storage_bucket.state.name if {CURSOR_CONDITION}",
    ),
    (
        "trigger",
        "roles/run.invoker",
        "google_cloud_run_v2_service_iam_member",
        "google_cloudfunctions2_function.exporter[each.key].service_config[0].service",
    ),
    (
        "agent:pubsub.googleapis.com",
        "roles/iam.serviceAccountTokenCreator",
        "google_service_account_iam_member",
        "google_service_account.trigger.name",
    ),
    ("agent:eventarc.googleapis.com", "roles/eventarc.serviceAgent", "google_project_iam_member", "var.project_id"),
    ("agent:pubsub.googleapis.com", "roles/pubsub.serviceAgent", "google_project_iam_member", "var.project_id"),
    # Only with Direct VPC egress: Google's page asks for it ("To authorize Direct VPC egress"), on its own service.
    (
        "runtime[each.key] with Direct VPC egress",
        "roles/run.invoker",
        "google_cloud_run_v2_service_iam_member",
        "google_cloudfunctions2_function.exporter[each.key].service_config[0].service",
    ),
    ("build", "roles/logging.logWriter", "google_project_iam_member", "var.project_id"),
    (
        "build",
        "roles/artifactregistry.writer",
        "google_artifact_registry_repository_iam_member",
        "google_artifact_registry_repository.functions.name",
    ),
    ("build", "roles/storage.objectViewer", "google_storage_bucket_iam_member", "google_storage_bucket.source.name"),
    ("build", "roles/storage.objectViewer", "google_project_iam_member", f"var.project_id if {STAGING_CONDITION}"),
}


def test_iam_grants_exactly_the_listed_roles(cfg: Config):
    assert _grants(cfg) == EXPECTED_GRANTS


def test_no_primitive_or_project_wide_secret_or_storage_roles(cfg: Config):
    for who, role, rtype, target in _grants(cfg):
        assert role not in PRIMITIVE_ROLES, (who, role)
        if rtype == "google_project_iam_member":
            assert not role.startswith("roles/secretmanager."), (who, role)
            if role.startswith("roles/storage."):
                # Only read access, only to Cloud Functions' staging bucket (it has no IAM of its own before
                # the first deploy): see test_build_can_read_the_staging_bucket_and_nothing_else.
                assert (who, role) == ("build", "roles/storage.objectViewer"), (who, role)
                assert target.endswith(f" if {STAGING_CONDITION}"), target


def test_service_accounts_are_wired(cfg: Config):
    sas = cfg.resources["google_service_account"]
    assert {"runtime", "trigger", "build"} <= set(sas)
    _, fn = cfg.one("google_cloudfunctions2_function")
    # Each function runs as its own instance's account.
    assert sa_email_ref(block(fn["service_config"])["service_account_email"]) == f"runtime{EACH}"
    assert sa_email_ref(block(fn["event_trigger"])["service_account_email"]) == "trigger"
    assert sa_email_ref(block(fn["build_config"])["service_account"]) == "build"
    # the invoker grants (the trigger's; the runtime account's with Direct VPC egress) are on each function's
    # own service
    for invoker in cfg.resources["google_cloud_run_v2_service_iam_member"].values():
        assert expr(invoker["name"]).startswith(f"google_cloudfunctions2_function.exporter{EACH}.")
    # the build pushes into the repository it has write access to
    repo_name, _ = cfg.one("google_artifact_registry_repository")
    assert expr(block(fn["build_config"])["docker_repository"]) == f"google_artifact_registry_repository.{repo_name}.id"


def _condition_allows(expression: str, name: str) -> bool:
    """Evaluate the two CEL forms the staging grant uses on a Cloud Storage resource name (no other form)."""
    results = []
    for term in expression.split(" || "):
        m = re.fullmatch(r'resource\.name == "([^"]+)"', term) or re.fullmatch(
            r'resource\.name\.startsWith\("([^"]+)"\)', term
        )
        assert m, f"unexpected condition term: {term}"
        results.append(name == m.group(1) if "==" in term else name.startswith(m.group(1)))
    return any(results)


def test_build_can_read_the_staging_bucket_and_nothing_else(cfg: Config):
    """Issue 13 §1: Cloud Build, as the build account, downloads the zip from gcf-v2-sources-<number>-<region>."""
    grant = cfg.resources["google_project_iam_member"]["build_staging_viewer"]
    assert sa_ref(grant["member"]) == "build"
    assert grant["role"] == "roles/storage.objectViewer"
    assert block(grant["condition"])["expression"] == STAGING_CONDITION
    assert cfg.locals["gcf_staging_bucket"] == "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
    # The bucket is the one the function is built from: same build account, same region.
    _, fn = cfg.one("google_cloudfunctions2_function")
    assert sa_email_ref(block(fn["build_config"])["service_account"]) == "build"
    assert expr(fn["location"]) == "var.region"
    rendered = STAGING_CONDITION.replace("${local.gcf_staging_bucket}", "gcf-v2-sources-123456789-us-central1")
    allowed = {
        "projects/_/buckets/gcf-v2-sources-123456789-us-central1": True,  # objects.list is checked on the bucket
        "projects/_/buckets/gcf-v2-sources-123456789-us-central1/objects/x/function-source.zip": True,
        "projects/_/buckets/gcf-v2-sources-123456789-us-central1-other": False,
        "projects/_/buckets/gcf-v2-sources-123456789-us-central1-other/objects/a.zip": False,
        "projects/_/buckets/gcf-v2-sources-123456789-europe-west1/objects/a.zip": False,
        "projects/_/buckets/my-project-id-looker-audit-state/objects/prod/state.json": False,
        "projects/_/buckets/gcf-v2-sources-1234567890-us-central1/objects/a.zip": False,
    }
    for name, expected in allowed.items():
        assert _condition_allows(rendered, name) is expected, name


def _depends_on(res: dict) -> set[str]:
    return {expr(d) for d in res.get("depends_on", [])}


def test_functions_wait_for_the_grants_of_the_first_build_and_trigger(cfg: Config):
    """Issue 13 §1 and §3: every grant the first build and trigger need, then a wait, then the function."""
    wait = cfg.resources["time_sleep"]["iam_propagation"]
    assert wait["create_duration"] == "${var.iam_propagation_seconds}s"
    assert cfg.variables["iam_propagation_seconds"]["default"] >= 60, "the provider's own example waits 60 s"
    assert _depends_on(wait) == {
        "google_project_iam_member.build_log_writer",
        "google_artifact_registry_repository_iam_member.build_writer",
        "google_storage_bucket_iam_member.build_source_viewer",
        "google_project_iam_member.build_staging_viewer",
        "google_project_iam_member.service_agents",
        "google_service_account_iam_member.pubsub_agent_token_creator",
    }
    # Every grant to the build account or to a service agent is waited for.
    for rtype, named in cfg.resources.items():
        for name, res in named.items() if rtype.endswith("_iam_member") else ():
            if "google_service_account.build." in res["member"] or "google_project_service_identity." in res["member"]:
                assert f"{rtype}.{name}" in _depends_on(wait), f"{rtype}.{name} is not waited for"
    _, fn = cfg.one("google_cloudfunctions2_function")
    assert "time_sleep.iam_propagation" in _depends_on(fn)


SERVICE_AGENT_ROLES = {
    "eventarc.googleapis.com": "roles/eventarc.serviceAgent",
    "pubsub.googleapis.com": "roles/pubsub.serviceAgent",
}


def test_service_agents_exist_before_their_grants(cfg: Config):
    """Issue 13 §3: the Eventarc and Pub/Sub agents are created, not assumed, and get their own roles."""
    agents = cfg.resources["google_project_service_identity"]["agents"]
    assert agents["provider"] == "${google-beta}" or expr(agents["provider"]) == "google-beta"
    assert expr(agents["for_each"]) == "toset(keys(local.service_agent_roles))"
    assert "google_project_service.apis" in _depends_on(agents), "the APIs first"
    assert cfg.locals["service_agent_roles"] == SERVICE_AGENT_ROLES
    grant = cfg.resources["google_project_iam_member"]["service_agents"]
    assert expr(grant["for_each"]) == "local.service_agent_roles"
    # Destroying this stack must not take their roles from agents the whole project uses.
    assert block(grant["lifecycle"])["prevent_destroy"] is True
    assert f"terraform state rm 'module.{MODULE_CALL}.google_project_iam_member.service_agents'" in docs_text()
    token = cfg.resources["google_service_account_iam_member"]["pubsub_agent_token_creator"]
    assert sa_ref(token["member"]) == "agent:pubsub.googleapis.com"


# --- the secret ---------------------------------------------------------------------


SECRETISH = re.compile(r"password|passwd|client_secret|client_id|api_key|token|private_key|credential", re.I)


def test_secret_is_a_container_only(cfg: Config):
    _name, secret = cfg.one("google_secret_manager_secret")
    assert per_instance(secret)
    assert "auto" in block(secret["replication"])
    assert "google_secret_manager_secret_version" not in cfg.resources
    assert "google_secret_manager_secret_version" not in cfg.data


def test_no_secret_value_in_variables_or_resources(cfg: Config):
    for name, var in cfg.variables.items():
        assert not SECRETISH.search(name), f"variable {name} looks like it carries a secret"
        assert var.get("sensitive") is not True, f"variable {name} is sensitive: secrets stay out of Terraform"
        assert var.get("ephemeral") is not True, name
    text = "\n".join(p.read_text() for p in _tf_files())
    for attr in ("secret_data", "secret_data_wo", "secret_environment_variables", "client_secret ="):
        assert attr not in text, f"{attr} found in terraform/"
    for key in function_env(cfg):
        assert not SECRETISH.search(key) or key == "LOOKER_CREDENTIALS_SECRET", key


def test_secret_add_version_commands_work(cfg: Config, tmp_path: Path):
    """Render the output as Terraform would (for the key "prod") and run it with a fake gcloud."""
    name, _secret = cfg.one("google_secret_manager_secret")
    value = cfg.outputs["secret_add_version_commands"]["value"]
    m = re.fullmatch(rf"\$\{{\{{for k, s in google_secret_manager_secret\.{name} : k => \"(.*)\"\}}\}}", value, re.S)
    assert m, value
    command = re.sub(r'\\(["\\])', r"\1", m.group(1))
    rendered = command.replace("${s.secret_id}", "looker-audit-prod-looker-credentials")
    rendered = rendered.replace("${var.project_id}", "my-project")
    assert "${" not in rendered, rendered
    fake = tmp_path / "gcloud"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$0.args"\ncat > "$0.stdin"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    subprocess.run(
        ["bash", "-c", rendered],
        env=dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}"),
        check=True,
        timeout=30,
    )
    args = (tmp_path / "gcloud.args").read_text().split("\n")[:-1]
    assert args == [
        "secrets",
        "versions",
        "add",
        "looker-audit-prod-looker-credentials",
        "--project=my-project",
        "--data-file=-",
    ]
    payload = json.loads((tmp_path / "gcloud.stdin").read_text())
    assert set(payload) == {"client_id", "client_secret"}


# --- long retention -------------------------------------------------------------------


def test_long_retention_is_optional_and_defaults_to_400_days(cfg: Config):
    assert cfg.variables["enable_long_retention"]["default"] is False
    assert cfg.variables["retention_days"]["default"] == 400
    assert cfg.locals["retention"] == "${var.enable_long_retention}"
    for rtype, name in (
        ("google_logging_project_bucket_config", "audit"),
        ("google_logging_project_sink", "audit"),
        ("google_logging_project_exclusion", "audit_not_in_default"),
    ):
        res = cfg.resources[rtype][name]
        assert expr(res["count"]) == "local.retention ? 1 : 0", f"{rtype}.{name} must follow enable_long_retention"


def test_log_bucket(cfg: Config):
    bucket = cfg.resources["google_logging_project_bucket_config"]["audit"]
    assert expr(bucket["retention_days"]) == "var.retention_days"
    assert expr(bucket["location"]) == "var.log_bucket_location"
    assert cfg.variables["log_bucket_location"]["default"] == "global"
    assert expr(bucket["locked"]) == "var.lock_log_bucket"
    assert cfg.variables["lock_log_bucket"]["default"] is False, "locking is irreversible: opt-in only"
    # Log Analytics only when the linked dataset is wanted (it cannot be undone).
    assert expr(bucket["enable_analytics"]) == "local.linked_dataset"


def test_sink_routes_the_exported_log_to_the_bucket(cfg: Config):
    sink = cfg.resources["google_logging_project_sink"]["audit"]
    assert sink["destination"] == "logging.googleapis.com/${google_logging_project_bucket_config.audit[0].id}"
    assert expr(sink["filter"]) == "local.log_filter"
    assert cfg.locals["events_log_filter"] == 'logName="projects/${var.project_id}/logs/${var.log_name}"'
    # With the query history exported, its log is routed (and kept) too.
    assert "${var.history_log_name}" in cfg.locals["log_filter"]
    assert 'contains(var.export_streams, "history")' in cfg.locals["log_filter"]
    # Same project: the writer identity needs no grant (and the stack adds none).
    assert not any("writer_identity" in str(r) for r in cfg.resources.get("google_project_iam_member", {}).values())


def test_exclusion_keeps_the_entries_out_of_default(cfg: Config):
    exclusion = cfg.resources["google_logging_project_exclusion"]["audit_not_in_default"]
    sink = cfg.resources["google_logging_project_sink"]["audit"]
    # Exactly the entries the sink routes; created only after the sink.
    assert exclusion["filter"] == sink["filter"]
    assert exclusion.get("disabled", False) is False
    assert "${google_logging_project_sink.audit}" in exclusion["depends_on"]


def test_linked_dataset_is_optional(cfg: Config):
    assert cfg.variables["enable_bigquery_linked_dataset"]["default"] is False
    assert cfg.locals["linked_dataset"] == "${var.enable_long_retention && var.enable_bigquery_linked_dataset}"
    link = cfg.resources["google_logging_linked_dataset"]["audit"]
    assert expr(link["count"]) == "local.linked_dataset ? 1 : 0"
    assert expr(link["bucket"]) == "google_logging_project_bucket_config.audit[0].id"
    # A BigQuery dataset ID has no hyphen.
    assert "replace(" in link["link_id"] and '"-", "_"' in link["link_id"]


# --- security signals and exporter health ------------------------------------------------

SECURITY_SIGNALS = {
    "login_failure_burst",
    "role_changes",
    "sudo_sessions",
    "api_credentials",
    "large_exports",
    "downloads",
}
HEALTH_SIGNALS = {"exporter_lag", "exporter_failures", "exporter_no_success"}


def test_every_signal_is_switchable(cfg: Config):
    alerts = cfg.variables["alerts"]
    fields = re.findall(r"(\w+)\s*=\s*optional\(bool, true\)", alerts["type"])
    assert set(fields) == HEALTH_SIGNALS
    # Security switches default to null: on when the signal's log is exported and it is not experimental.
    assert set(re.findall(r"(\w+)\s*=\s*optional\(bool\)", alerts["type"])) == SECURITY_SIGNALS
    assert alerts["default"] == {}
    assert "var.alerts[k]" in cfg.locals["enabled_security_signals"]
    assert expr(cfg.resources["google_logging_metric"]["security"]["for_each"]) == "local.enabled_security_signals"
    policies = cfg.resources["google_monitoring_alert_policy"]
    # Each enabled signal alerts one way: a threshold on its metric, or a log match (health.tf).
    assert expr(policies["security"]["for_each"]) == "local.threshold_signals"
    assert expr(policies["security_log_match"]["for_each"]) == "local.log_match_signals"
    for (rtype, name), switch in {
        ("google_monitoring_alert_policy", "exporter_lag"): "exporter_lag",
        ("google_monitoring_alert_policy", "exporter_failures"): "exporter_failures",
        ("google_monitoring_alert_policy", "exporter_no_success"): "exporter_no_success",
    }.items():
        assert expr(cfg.resources[rtype][name]["count"]) == f"var.alerts.{switch} ? 1 : 0", (rtype, name)
    # The health metrics follow the alerts that read them, or the dashboard.
    metrics = cfg.resources["google_logging_metric"]
    assert expr(metrics["exporter_runs"]["for_each"]) == "local.enabled_run_counters"
    assert "if var.alerts[c.alert] || var.enable_dashboard" in cfg.locals["enabled_run_counters"]
    counters = cfg.locals["run_counters"]
    assert {k: c["alert"] for k, c in counters.items()} == {"failed": "exporter_failures",
                                                             "successful": "exporter_no_success"}
    assert expr(metrics["exporter_values"]["for_each"]) == "local.enabled_summary_values"
    assert "if var.enable_dashboard || anytrue([for a in v.alerts : var.alerts[a]])" in (
        cfg.locals["enabled_summary_values"]
    )
    assert {k: v["alerts"] for k, v in cfg.locals["summary_values"].items()} == {
        "lag": ["exporter_lag"], "events_written": [], "query_calls": []
    }


def _reads_metric(policy: dict) -> str | None:
    """The metric an alert policy's condition reads, or None for a log-match condition."""
    condition = block(policy["conditions"])
    inner = condition.get("condition_threshold") or condition.get("condition_absent")
    if inner is None:
        assert "condition_matched_log" in condition, condition
        return None
    ref = re.search(r"google_logging_metric\.(\w+)", block(inner)["filter"])
    assert ref, "a metric condition must read this stack's log-based metric"
    return ref.group(1)


def test_every_alert_policy_notifies_the_channels(cfg: Config):
    policies = cfg.resources["google_monitoring_alert_policy"]
    assert set(policies) == {"security", "security_log_match"} | HEALTH_SIGNALS
    for name, policy in policies.items():
        assert expr(policy["notification_channels"]) == "var.notification_channels", name
        assert block(policy["documentation"])["content"].strip(), name
        metric = _reads_metric(policy)
        assert metric is None or metric in cfg.resources["google_logging_metric"], name
    assert cfg.variables["notification_channels"]["default"] == []
    assert "notificationChannels/" in block(cfg.variables["notification_channels"]["validation"])["condition"]


def test_no_alert_policy_reads_a_metric_before_cloud_monitoring_knows_it(cfg: Config):
    """Issue 13 §2: a policy on a metric waits for it; a log-match policy needs none."""
    wait = cfg.resources["time_sleep"]["metrics"]
    assert wait["create_duration"] == "${var.metric_propagation_seconds}s"
    # It waits after every log-based metric, and again whenever the set of metrics changes.
    assert _depends_on(wait) == {f"google_logging_metric.{name}" for name in cfg.resources["google_logging_metric"]}
    assert expr(wait["triggers"]["metrics"]) == 'join(",", sort(local.metric_types))'
    assert cfg.variables["metric_propagation_seconds"]["default"] >= 120
    for name, policy in cfg.resources["google_monitoring_alert_policy"].items():
        if _reads_metric(policy) is None:
            # A log match needs a notification rate limit (AlertStrategy.notification_rate_limit).
            strategy = block(policy["alert_strategy"])
            assert block(strategy["notification_rate_limit"])["period"].endswith("s"), name
            match = block(block(policy["conditions"])["condition_matched_log"])
            assert expr(match["filter"]) == "each.value.filter", name
            assert match["label_extractors"]["looker_host"] == "EXTRACT(labels.looker_host)"
            assert "time_sleep.metrics" not in _depends_on(policy), f"{name} needs no metric, so it does not wait"
        else:
            assert "time_sleep.metrics" in _depends_on(policy), f"{name} reads a metric: it must wait for it"
    # The dashboard reads them too.
    assert "time_sleep.metrics" in _depends_on(cfg.resources["google_monitoring_dashboard"]["this"])


def test_metrics_policies_and_dashboard_wait_for_the_apis(cfg: Config):
    """On a brand-new project, Logging and Monitoring resources must not race the enablement of their APIs."""
    waiting = [
        (f"{rtype}.{name}", res)
        for rtype in ("google_logging_metric", "google_monitoring_alert_policy", "google_monitoring_dashboard")
        for name, res in cfg.resources[rtype].items()
    ]
    assert {a.split(".")[1] for a, _ in waiting} >= {"security", "security_log_match", "exporter_runs", "this"}
    for address, res in waiting:
        assert "google_project_service.apis" in _depends_on(res), f"{address} must wait for google_project_service.apis"


def test_every_metric_is_in_metric_types(cfg: Config):
    """local.metric_types (what the waits and the dashboard check) lists exactly the metrics the resources create."""
    metrics = cfg.resources["google_logging_metric"]
    assert set(metrics) == {"security", "exporter_runs", "exporter_values"}
    sources = {
        "security": "local.enabled_security_signals",
        "exporter_runs": "local.enabled_run_counters",
        "exporter_values": "local.enabled_summary_values",
    }
    for name, source in sources.items():
        assert expr(metrics[name]["for_each"]) == source
        assert expr(metrics[name]["name"]) == "each.value.metric", name
        assert f"[for s in values({source}) : " in cfg.locals["metric_types"] or (
            f"values({source})" in cfg.locals["metric_types"]
        ), name


def test_security_metrics_count_the_exported_log_by_host(cfg: Config):
    metric = cfg.resources["google_logging_metric"]["security"]
    assert expr(metric["filter"]) == "each.value.filter"
    assert metric["label_extractors"]["looker_host"] == "EXTRACT(labels.looker_host)"
    # Bucket-scoped on the dedicated bucket when the entries are excluded from _Default.
    assert expr(metric["bucket_name"]) == "local.retention ? google_logging_project_bucket_config.audit[0].id : null"
    policy = cfg.resources["google_monitoring_alert_policy"]["security"]
    threshold = block(block(policy["conditions"])["condition_threshold"])
    agg = block(threshold["aggregations"])
    assert agg["alignment_period"] == "${var.alert_window_seconds}s"
    assert agg["group_by_fields"] == ["metric.label.looker_host"]
    assert expr(threshold["threshold_value"]) == "each.value.threshold"
    signals = (TF / "signals.tf").read_text()
    for signal in SECURITY_SIGNALS:
        assert re.search(rf"^    {signal} = \{{", signals, re.M), f"signal {signal} missing in signals.tf"


def test_exporter_health_metrics_read_the_summary_line(cfg: Config):
    metrics = cfg.resources["google_logging_metric"]
    values = metrics["exporter_values"]
    assert values["value_extractor"] == "EXTRACT(jsonPayload.summary.${each.value.field})"
    assert values["filter"] == "${local.function_log_filter} AND jsonPayload.summary.${each.value.field}>=0"
    assert block(values["metric_descriptor"])["value_type"] == "DISTRIBUTION"
    fields = {k: v["field"] for k, v in cfg.locals["summary_values"].items()}
    assert fields == {"lag": "lag_seconds", "events_written": "events_written", "query_calls": "query_calls"}
    counters = cfg.locals["run_counters"]
    assert 'jsonPayload.message=~\\"^Looker export failed\\"' in counters["failed"]["filter"] or (
        'jsonPayload.message=~"^Looker export failed"' in counters["failed"]["filter"]
    )
    assert "severity>=ERROR" in counters["failed"]["filter"]
    assert "Looker export finished" in counters["successful"]["filter"]
    for name, counter in counters.items():
        assert counter["filter"].startswith("${local.function_log_filter} AND "), name
        assert counter["metric"] == f"${{var.name_prefix}}/exporter_{name}_runs", "the metric names stay as they were"
    runs = metrics["exporter_runs"]
    assert expr(runs["filter"]) == "each.value.filter"
    for metric in (values, runs):
        assert metric["label_extractors"] == {"function": "EXTRACT(resource.labels.service_name)"}
    policies = cfg.resources["google_monitoring_alert_policy"]
    lag_condition = block(block(policies["exporter_lag"]["conditions"])["condition_threshold"])
    assert 'google_logging_metric.exporter_values["lag"].name' in lag_condition["filter"]
    assert expr(lag_condition["threshold_value"]) == "var.exporter_max_lag_seconds"
    assert cfg.variables["exporter_max_lag_seconds"]["default"] == 3600
    absent = block(block(policies["exporter_no_success"]["conditions"])["condition_absent"])
    assert absent["duration"] == "${var.exporter_max_lag_seconds}s"


def test_run_metrics_keep_their_state_from_their_counted_resources(cfg: Config):
    moves = {expr(m["from"]): expr(m["to"]) for m in cfg.moved}
    assert moves == {
        "google_logging_metric.exporter_failures[0]": 'google_logging_metric.exporter_runs["failed"]',
        "google_logging_metric.exporter_runs[0]": 'google_logging_metric.exporter_runs["successful"]',
        "google_logging_metric.exporter_lag[0]": 'google_logging_metric.exporter_values["lag"]',
    }
    assert cfg.locals["summary_values"]["lag"]["metric"] == "${var.name_prefix}/exporter_lag", "same metric as before"


def test_the_summary_line_matches_the_health_filters():
    """The Python side logs what the health metrics look for."""
    source = (ROOT / "looker_audit_export" / "function.py").read_text()
    assert 'log.error("Looker export failed: ' in source
    assert 'log.info("Looker export finished: ' in source
    assert '"summary":' in source


# --- terraform console: the locals-only files, evaluated -------------------------------


def _console(tmp_path: Path, expression: str, tfvars: str) -> Any:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary")
    return draw_dashboard.console(expression, tfvars, tmp_path, terraform)


TWO_INSTANCES = """
project_id = "my-project-id"
looker_instances = {
  prod = { base_url = "https://mycompany.cloud.looker.com/" }
  dev  = { base_url = "https://dev.example.com:19999", schedule = "*/30 * * * *", verify_ssl = false, page_size = 1000 }
}
"""


def test_instances_get_the_defaults_and_their_own_overrides(tmp_path: Path):
    instances = _console(tmp_path, "local.instances", TWO_INSTANCES)
    assert instances["prod"] == {
        "base_url": "https://mycompany.cloud.looker.com",
        "host": "mycompany.cloud.looker.com",
        "schedule": "*/10 * * * *",
        "verify_ssl": True,
        "timeout_seconds": 120,
        "page_size": 5000,
        "initial_lookback_minutes": 10,
        "function_name": "looker-audit-prod-export",
        "optional_env": {},
        "vpc_egress": "NONE",
    }
    assert instances["dev"]["host"] == "dev.example.com:19999", "labels.looker_host keeps the port (urlsplit netloc)"
    assert instances["dev"]["schedule"] == "*/30 * * * *"
    assert instances["dev"]["verify_ssl"] is False
    assert instances["dev"]["page_size"] == 1000
    assert instances["dev"]["function_name"] == "looker-audit-dev-export"


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ("{}", "at least one Looker instance"),
        ('{ Prod = { base_url = "https://a.example.com" } }', "1-12 characters"),
        ('{ a-very-long-key = { base_url = "https://a.example.com" } }', "1-12 characters"),
        ('{ prod = { base_url = "http://a.example.com" } }', "https:// URL"),
        ('{ prod = { base_url = "https://a.example.com/looker" } }', "https:// URL"),
        (
            '{ prod = { base_url = "https://a.example.com" }, again = { base_url = "https://A.example.com/" } }',
            "same base_url",
        ),
        ('{ prod = { base_url = "https://a.example.com", schedule = "*/5 * *" } }', "5-field cron"),
        ('{ prod = { base_url = "https://a.example.com", page_size = 10 } }', "page_size"),
        ('{ prod = { base_url = "https://a.example.com", query_timezone = "New York" } }', "IANA time zone"),
        ('{ prod = { base_url = "https://a.example.com", query_timezone = "-05:00" } }', "IANA time zone"),
        (
            '{ prod = { base_url = "https://a.example.com", vpc_egress = "PRIVATE" } }',
            "PRIVATE_RANGES_ONLY, ALL_TRAFFIC or NONE",
        ),
    ],
)
def test_instances_are_validated(tmp_path: Path, instances: str, message: str):
    with pytest.raises(ValueError, match="Invalid value for variable") as err:
        _console(tmp_path, "local.instances", f'project_id = "my-project-id"\nlooker_instances = {instances}\n')
    assert message in " ".join(str(err.value).replace("│", " ").split())


# --- network: VPC egress per instance, the static address (network.tf) -----------------------------

THREE_INSTANCES = """
project_id = "my-project-id"
looker_instances = {
  private = { base_url = "https://10.1.2.3" }
  hosted  = { base_url = "https://mycompany.cloud.looker.com", vpc_egress = "ALL_TRAFFIC" }
  public  = { base_url = "https://public.example.com", vpc_egress = "NONE" }
}
"""


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("", {"private": "NONE", "hosted": "ALL_TRAFFIC", "public": "NONE"}),
        (
            'vpc_egress = { network = "vpc", subnetwork = "functions" }',
            {"private": "PRIVATE_RANGES_ONLY", "hosted": "ALL_TRAFFIC", "public": "NONE"},
        ),
        (
            'vpc_egress = { connector = "looker", egress = "ALL_TRAFFIC" }',
            {"private": "ALL_TRAFFIC", "hosted": "ALL_TRAFFIC", "public": "NONE"},
        ),
        # The static address sends everything through the NAT unless an instance says otherwise.
        (
            'vpc_egress = { network = "vpc", subnetwork = "functions", static_ip = true }',
            {"private": "ALL_TRAFFIC", "hosted": "ALL_TRAFFIC", "public": "NONE"},
        ),
    ],
)
def test_each_instance_has_its_own_vpc_egress(tmp_path: Path, network: str, expected: dict[str, str]):
    """One Looker private, one behind an allowlist, one public: each function takes its own way out.

    Without vpc_egress, "hosted" asks for the VPC with none to go through: the function's precondition stops
    the plan (tests/test_terraform_plan.py runs it).
    """
    found = _console(tmp_path, "{ for k, i in local.instances : k => i.vpc_egress }", THREE_INSTANCES + network)
    assert found == expected


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ('{ network = "vpc" }', "exactly one of subnetwork"),
        ('{ subnetwork = "functions", connector = "looker" }', "exactly one of subnetwork"),
        ('{ subnetwork = "functions", egress = "VPC_EGRESS_ALL_TRAFFIC" }', "PRIVATE_RANGES_ONLY or ALL_TRAFFIC"),
        ('{ subnetwork = "projects/host/subnetworks/functions" }', "projects/HOST_PROJECT/regions/REGION"),
        ('{ connector = "projects/p/regions/us-central1/connectors/c" }', "projects/PROJECT/locations/REGION"),
        ('{ connector = "looker", static_ip = true }', "static_ip needs Direct VPC egress"),
        ('{ subnetwork = "functions", static_ip = true }', "static_ip needs Direct VPC egress"),
        (
            '{ network = "vpc", subnetwork = "functions", static_ip = true, egress = "PRIVATE_RANGES_ONLY" }',
            "leave egress unset",
        ),
        ('{ connector = "looker", network_tags = ["looker"] }', "Direct VPC egress only"),
    ],
)
def test_vpc_egress_is_validated(tmp_path: Path, network: str, message: str):
    with pytest.raises(ValueError, match="Invalid value for variable") as err:
        _console(tmp_path, "local.instances", THREE_INSTANCES + f"vpc_egress = {network}\n")
    assert message in " ".join(str(err.value).replace("│", " ").split())


def test_vpc_egress_sets_the_provider_enums(cfg: Config):
    """direct_vpc_egress takes VPC_EGRESS_*, vpc_connector_egress_settings the bare names (google 7.46.1 schema:
    "Possible values" of each), only for an instance that goes through the VPC."""
    _, fn = cfg.one("google_cloudfunctions2_function")
    svc = block(fn["service_config"])
    through_vpc = 'each.value.vpc_egress != "NONE"'
    assert svc["direct_vpc_egress"] == (
        f'${{local.direct_vpc && {through_vpc} ? "VPC_EGRESS_${{each.value.vpc_egress}}" : null}}'
    )
    assert expr(svc["vpc_connector_egress_settings"]) == (
        f"local.connector != null && {through_vpc} ? each.value.vpc_egress : null"
    )
    assert expr(svc["vpc_connector"]) == f"local.connector != null && {through_vpc} ? local.connector : null"
    interface = block(svc["dynamic"])["direct_vpc_network_interface"]
    assert expr(interface["for_each"]) == f"local.direct_vpc && {through_vpc} ? [var.vpc_egress] : []"
    # The NAT: only the reserved address, only the functions' subnetwork.
    nat = cfg.resources["google_compute_router_nat"]["egress"]
    assert nat["nat_ip_allocate_option"] == "MANUAL_ONLY"
    assert expr(nat["nat_ips"][0]) == "google_compute_address.egress[0].self_link"
    assert nat["source_subnetwork_ip_ranges_to_nat"] == "LIST_OF_SUBNETWORKS"
    assert expr(block(nat["subnetwork"])["name"]) == "local.subnetwork_id"
    for name in ("google_compute_address", "google_compute_router", "google_compute_router_nat"):
        assert expr(cfg.resources[name]["egress"]["count"]) == "local.static_ip ? 1 : 0", name
    assert cfg.resources["google_compute_address"]["egress"]["address_type"] == "EXTERNAL"
    assert "google_compute_address.egress[0].address" in cfg.outputs["egress_ip"]["value"]


def test_network_apis_only_when_the_option_is_on(cfg: Config):
    apis = str(cfg.locals["apis"])
    assert 'local.direct_vpc ? ["compute.googleapis.com"] : []' in apis
    assert 'local.connector != null ? ["vpcaccess.googleapis.com"] : []' in apis


@pytest.mark.parametrize("threshold", [1, 9, 10, 109, 100000, 250000, 999, 1000, 123456789])
def test_row_count_regex_compares_numerically(tmp_path: Path, threshold: int):
    regex = _console(
        tmp_path, "local.row_count_at_least_regex", TWO_INSTANCES + f"large_export_row_count = {threshold}\n"
    )
    assert "\\" not in regex, "no backslash: nothing to escape inside a Logging query string"
    pattern = re.compile(regex)
    samples = {0, 1, 8, 9, 10, 11, 99, 100, 101, 108, 109, 110, 199, 200, 999, 1000, 5000, 99999, 100000}
    samples |= {threshold - 1, threshold, threshold + 1, threshold * 10, threshold // 10, 10**12}
    for number in sorted(n for n in samples if n >= 0):
        for text in (str(number), f" {number} ", f"{number}.0", f"00{number}"):
            assert bool(pattern.search(text)) == (number >= threshold), (threshold, text)
    for text in ("", "n/a", "12abc", "-5000000", "1e9"):
        assert not pattern.search(text), text


def test_run_counters_follow_their_alerts(tmp_path: Path):
    stdout = 'logName="projects/my-project-id/logs/run.googleapis.com%2Fstdout"'
    counters = _console(tmp_path, "local.enabled_run_counters", TWO_INSTANCES)
    assert set(counters) == {"failed", "successful"}
    for counter in counters.values():
        assert counter["filter"].startswith(stdout + " AND "), counter
    assert counters["failed"]["filter"].endswith(
        ' AND severity>=ERROR AND jsonPayload.message=~"^Looker export failed"'
    )
    assert counters["successful"]["filter"].endswith(
        ' AND severity=INFO AND jsonPayload.message=~"^Looker export finished"'
    )
    no_failure_alert = TWO_INSTANCES + "alerts = { exporter_failures = false }\n"
    assert set(_console(tmp_path, "local.enabled_run_counters", no_failure_alert)) == {"failed", "successful"}, (
        "the dashboard shows both"
    )
    no_dashboard = no_failure_alert + "enable_dashboard = false\n"
    assert set(_console(tmp_path, "local.enabled_run_counters", no_dashboard)) == {"successful"}


def test_signal_filters(tmp_path: Path):
    signals = _console(tmp_path, "local.security_signals", TWO_INSTANCES)
    log = 'logName="projects/my-project-id/logs/looker_system_activity_logs"'
    history = 'logName="projects/my-project-id/logs/looker_query_history"'
    assert set(signals) == SECURITY_SIGNALS
    for name, signal in signals.items():
        assert signal["filter"].startswith((history if signal["stream"] == "history" else log) + " AND "), name
        assert signal["metric"].startswith("looker-audit/"), name
        assert signal["filter"].count("(") == signal["filter"].count(")"), name
        assert signal["filter"].count('"') % 2 == 0, name
    assert 'labels.event_name=~"login_failure$"' in signals["login_failure_burst"]["filter"]
    assert signals["login_failure_burst"]["threshold"] == 10
    assert "serviceAccountDelegationInfo:*" in signals["sudo_sessions"]["filter"]
    assert 'labels.event_name="export_query"' in signals["large_exports"]["filter"]
    assert "protoPayload.response.attributes.row_count=~" in signals["large_exports"]["filter"]
    for name in ("role_changes", "sudo_sessions", "api_credentials", "large_exports"):
        assert signals[name]["threshold"] == 0, "any single event raises these"

    assert signals["downloads"]["stream"] == "history" and signals["large_exports"]["experimental"]

    no_sudo = TWO_INSTANCES + "alerts = { sudo_sessions = false }\n"
    enabled = _console(tmp_path, "keys(local.enabled_security_signals)", no_sudo)
    assert set(enabled) == SECURITY_SIGNALS - {"sudo_sessions", "downloads", "large_exports"}
    with_history = TWO_INSTANCES + 'export_streams = ["events", "history"]\nalerts = { large_exports = true }\n'
    assert set(_console(tmp_path, "keys(local.enabled_security_signals)", with_history)) == SECURITY_SIGNALS

    function_filter = _console(tmp_path, "local.function_log_filter", TWO_INSTANCES)
    assert function_filter == (
        'logName="projects/my-project-id/logs/run.googleapis.com%2Fstdout" AND resource.type="cloud_run_revision"'
        ' AND resource.labels.service_name=("looker-audit-dev-export" OR "looker-audit-prod-export")'
    )


# --- outputs --------------------------------------------------------------------


def test_outputs(cfg: Config):
    required = {
        "function_names",
        "function_uris",
        "topics",
        "scheduler_jobs",
        "runtime_service_accounts",
        "trigger_service_account",
        "secret_ids",
        "secret_add_version_commands",
        "state_uris",
        "run_now_commands",
        "logs_explorer_query",
        "logs_explorer_url",
        "logs_explorer_queries",
        "log_bucket",
        "bigquery_dataset",
        "alert_policies",
    }
    assert required <= set(cfg.outputs), required - set(cfg.outputs)
    for name, out in cfg.outputs.items():
        assert out.get("description", "").strip(), f"output {name} has no description"
    query = cfg.resolve(cfg.outputs["logs_explorer_query"]["value"])
    assert cfg.resolve(query) == 'logName="projects/${var.project_id}/logs/${var.log_name}"'
    url = cfg.outputs["logs_explorer_url"]["value"]
    assert url.startswith("https://console.cloud.google.com/logs/query;query=${urlencode(")
    assert url.endswith("?project=${var.project_id}")
    # The cursor locations are read back from the functions themselves.
    assert 'environment_variables["STATE_URI"]' in cfg.outputs["state_uris"]["value"]
    assert "labels.looker_host" in cfg.outputs["logs_explorer_queries"]["value"]


# --- tools ----------------------------------------------------------------------


def _tf_files() -> list[Path]:
    """Every .tf file under terraform/: the root, the module and the examples."""
    return sorted(p for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts)


def _inline_skips() -> list[tuple[str, str]]:
    skips = []
    for path in _tf_files():
        for m in re.finditer(r"#\s*checkov:skip=([A-Z0-9_]+)(?::\s*(.*))?", path.read_text()):
            skips.append((m.group(1), (m.group(2) or "").strip()))
    return skips


def test_checkov_skips_are_inline_and_reasoned():
    for check, reason in _inline_skips():
        assert len(reason) >= 20, f"checkov skip of {check} needs a reason"
    for cfg_file in (".checkov.yaml", ".checkov.yml"):
        for folder in (ROOT, *{p.parent for p in _tf_files()}):
            assert not (folder / cfg_file).exists(), f"no global checkov skips: {folder / cfg_file}"


def test_checkov_passes():
    exe = checkov()
    result = subprocess.run(
        [
            exe,
            "-d",
            str(TF_ROOT),
            "--framework",
            "terraform",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov output is not JSON (rc={result.returncode}):\n{result.stdout}\n{result.stderr}")
    reports = report if isinstance(report, list) else [report]
    summary = {k: sum(r["summary"][k] for r in reports) for k in ("passed", "failed", "skipped", "parsing_errors")}
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    # Each inline skip is used, and nothing else is skipped (a for_each resource counts once per instance).
    skipped = {c["check_id"] for r in reports for c in r["results"].get("skipped_checks", [])}
    assert skipped == {check for check, _ in _inline_skips()}
    assert summary["skipped"] >= len(_inline_skips())
    assert result.returncode == 0, result.stderr


def test_terraform_fmt():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "terraform"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}"


# --- alert kinds and the dashboard, evaluated ----------------------------------------


def test_each_signal_alerts_by_log_match_or_by_threshold(tmp_path: Path):
    """Issue 13 §2: one event is enough for a log match; a burst needs the metric and its wait."""
    with_history = TWO_INSTANCES + 'export_streams = ["events", "history"]\n'
    every_signal = with_history + "alerts = { large_exports = true }\n"
    evaluated = _console(
        tmp_path,
        "{ kinds = local.signal_alert_kind, signals = local.security_signals, table = local.signal_alerting,"
        " enabled = keys(local.enabled_security_signals) }",
        every_signal,
    )
    kinds, signals = evaluated["kinds"], evaluated["signals"]
    assert set(kinds) == set(evaluated["enabled"]) == set(signals), "every enabled signal alerts one way"
    assert set(evaluated["table"]) <= set(signals), "local.signal_alerting names a signal signals.tf no longer has"
    for name, kind in kinds.items():
        assert kind in {"log_match", "threshold"}, name
        if signals[name]["threshold"] > 0:
            assert kind == "threshold", f"{name}: a log match cannot count to {signals[name]['threshold']}"
    assert kinds["login_failure_burst"] == "threshold"
    assert kinds["role_changes"] == "log_match"
    split = _console(
        tmp_path,
        "{ t = keys(local.threshold_signals), m = keys(local.log_match_signals) }",
        with_history + "alerts = { role_changes = false }\n",
    )
    assert "role_changes" not in split["t"] + split["m"]
    # large_exports is experimental: off unless switched on.
    assert sorted(split["t"] + split["m"]) == sorted(set(signals) - {"role_changes", "large_exports"})


def _dashboard_metric_types(dashboard: dict) -> list[str]:
    """Every metric type a chart of the dashboard reads: in filters, and in PromQL (UTF-8 names, "_sum" suffix)."""
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "filter":
                    found.extend(re.findall(r'metric\.type="([^"]+)"', value))
                elif key == "prometheusQuery":
                    names = re.findall(r'\{"([^"]+)"', value)
                    assert names, f"PromQL without a quoted metric name: {value}"
                    found.extend(re.sub(r"_(sum|count|bucket)$", "", n) for n in names)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    return found


DASHBOARD_CASES = {
    "defaults": "",
    "every alert off": "alerts = { " + ", ".join(f"{a} = false" for a in sorted(SECURITY_SIGNALS | HEALTH_SIGNALS))
    + " }\n",
    "some signals off, long retention": "alerts = { sudo_sessions = false, downloads = false }\n"
    "enable_long_retention = true\n",
}


@pytest.mark.parametrize("case", sorted(DASHBOARD_CASES))
def test_dashboard_shows_only_metrics_this_configuration_creates(tmp_path: Path, case: str):
    """Issue 13 §4: every chart reads a metric created here, and every enabled signal has its chart."""
    evaluated = _console(
        tmp_path,
        "{ dashboard = local.dashboard, metrics = local.metric_types, signals = local.enabled_security_signals }",
        TWO_INSTANCES + DASHBOARD_CASES[case],
    )
    dashboard, metrics, signals = evaluated["dashboard"], set(evaluated["metrics"]), evaluated["signals"]
    read = _dashboard_metric_types(dashboard)
    assert read and set(read) <= metrics, set(read) - metrics
    prefix = "logging.googleapis.com/user/looker-audit/"
    health = {f"{prefix}exporter_{n}" for n in ("successful_runs", "failed_runs", "events_written", "lag",
                                                "query_calls")}
    assert health <= set(read), "exporter health: runs by outcome, events written, lag, query calls"
    security = [t for t in read if t not in health]
    assert sorted(security) == sorted(f"logging.googleapis.com/user/{s['metric']}" for s in signals.values()), (
        "one chart per enabled security signal"
    )
    # The security charts are by Looker host, the health charts by function (= instance).
    text = json.dumps(dashboard)
    assert text.count('"metric.label.looker_host"') == len(signals)
    assert "sum by (function)" in text


def test_dashboard_tiles_fit_and_do_not_overlap(tmp_path: Path):
    dashboard = _console(tmp_path, "local.dashboard", TWO_INSTANCES)
    layout = dashboard["mosaicLayout"]
    cells: set[tuple[int, int]] = set()
    for tile in layout["tiles"]:
        assert tile["xPos"] >= 0 and tile["xPos"] + tile["width"] <= layout["columns"], tile["widget"]["title"]
        area = {(x, y) for x in range(tile["xPos"], tile["xPos"] + tile["width"])
                for y in range(tile["yPos"], tile["yPos"] + tile["height"])}
        assert not area & cells, f"{tile['widget']['title']} overlaps another tile"
        cells |= area
        assert tile["widget"]["title"]
    assert dashboard["displayName"] == "Looker audit export (looker-audit)"


def test_dashboard_is_switchable_and_linked(cfg: Config):
    dashboard = cfg.resources["google_monitoring_dashboard"]["this"]
    assert expr(dashboard["count"]) == "var.enable_dashboard ? 1 : 0"
    assert cfg.variables["enable_dashboard"]["default"] is True
    assert expr(dashboard["dashboard_json"]) == "jsonencode(local.dashboard)"
    url = cfg.outputs["dashboard_url"]["value"]
    assert url.startswith("${var.enable_dashboard ? \"https://console.cloud.google.com/monitoring/dashboards/")
    assert "google_monitoring_dashboard.this[0].id" in url and "?project=${var.project_id}" in url


def test_the_dashboard_picture_is_drawn_from_the_layout(tmp_path: Path):
    if shutil.which("terraform") is None:
        pytest.skip("no terraform binary")
    out = tmp_path / "dashboard.png"
    assert draw_dashboard.main(["-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # What each tile says it reads comes from the JSON: here the lag chart's metric and aggregation.
    dashboard = _console(tmp_path, "local.dashboard", TWO_INSTANCES)
    described = [draw_dashboard.describe(t["widget"]) for t in dashboard["mosaicLayout"]["tiles"]]
    assert ("LINE", "exporter_lag: mean per 600s, by function") in described
    assert ("scorecard", "sum(increase(exporter_query_calls_sum[30d]))") in described
    assert (ROOT / "docs" / "dashboard.png").is_file(), "docs/operations.md shows docs/dashboard.png"


# --- optional: our arguments against the provider's own schema ------------------------------

META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}


def _load_jsii(path: Path) -> dict[str, Any]:
    """The jsii assembly of a prebuilt provider binding: a .jsii file, or the wheel that carries it."""
    import tarfile
    import zipfile

    if path.suffix != ".whl":
        return json.loads(path.read_bytes())
    with zipfile.ZipFile(path) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with wheel.open(name) as tgz, tarfile.open(fileobj=tgz, mode="r:gz") as tar:
            member = tar.extractfile("package/.jsii")
            assert member is not None
            return json.loads(member.read())


def _schema(assembly: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, tuple[bool, list[str]]]], str]:
    """(resource type -> its Config struct, struct -> {argument: (optional, struct types it nests)}, version)."""
    types = assembly["types"]
    resources: dict[str, str] = {}
    version = ""
    for fqn, t in types.items():
        m = re.search(r"/(\d+\.\d+\.\d+)/docs/resources/\w+ (google_\w+)\}", t.get("docs", {}).get("summary", ""))
        if t.get("kind") == "class" and m and fqn + "Config" in types:
            resources[m.group(2)] = fqn + "Config"
            version = m.group(1)
    structs: dict[str, dict[str, tuple[bool, list[str]]]] = {}
    for fqn, t in types.items():
        if t.get("datatype"):
            props = {}
            for p in t.get("properties", []):
                anchor = re.search(r"#(\w+) ", p.get("docs", {}).get("remarks", ""))
                name = anchor.group(1) if anchor else re.sub(r"([A-Z])", r"_\1", p["name"]).lower()
                nested = [f for f in re.findall(r'"fqn": "([^"]+)"', json.dumps(p["type"])) if f in types]
                props[name] = (bool(p.get("optional")), nested)
            structs[fqn] = props
    return resources, structs, version


def _check_block(structs: dict[str, Any], fqn: str, body: dict[str, Any], where: str) -> list[str]:
    props = structs[fqn]
    problems = []
    # dynamic "name" { for_each = ...; content { ... } } stands for the block `name` with that content.
    dynamic = body.get("dynamic", [])
    body = {k: v for k, v in body.items() if k != "dynamic"}
    for item in dynamic if isinstance(dynamic, list) else [dynamic]:
        for name, dyn in item.items():
            body[name] = block(dyn)["content"]
    for key, value in body.items():
        if key in META_ARGUMENTS or key.startswith("//"):
            continue
        if key not in props:
            problems.append(f"{where}: unknown argument {key}")
            continue
        nested = [n for n in props[key][1] if n in structs]
        if nested and isinstance(value, (list, dict)):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    problems += _check_block(structs, nested[0], item, f"{where}.{key}")
    for key, (optional, _) in props.items():
        if not optional and key not in body:
            problems.append(f"{where}: required argument {key} missing")
    return problems


def test_arguments_match_the_provider_schema(cfg: Config):
    """Opt-in (heavy): every argument and block we set exists in the provider's schema, and every required one is set.

    The schema comes from the prebuilt CDK bindings on PyPI (not installed, only read):
        pip download --no-deps "cdktn-provider-google>=20,<21" "cdktn-provider-google-beta>=20,<21" -d /tmp/schema
        PROVIDER_SCHEMA=/tmp/schema/<google wheel>:/tmp/schema/<beta wheel> pytest tests/test_terraform.py -k schema
    Resources of a provider whose binding is not given are not checked.
    """
    paths = [Path(p) for p in os.environ.get("PROVIDER_SCHEMA", "").split(os.pathsep) if p]
    if not paths:
        pytest.skip("set PROVIDER_SCHEMA to the cdktn-provider-google(-beta) wheel(s) or .jsii file(s)")
    checked: set[str] = set()
    problems: list[str] = []
    for path in paths:
        assembly = _load_jsii(path)
        beta = assembly["name"].endswith("-beta")
        resources, structs, version = _schema(assembly)
        assert resources, f"no resources found in {path}"
        for rtype, named in cfg.resources.items():
            for name, body in named.items():
                if (expr(body.get("provider", "google")) == "google-beta") != beta or rtype not in resources:
                    continue
                checked.add(f"{rtype}.{name}")
                problems += _check_block(structs, resources[rtype], body, f"{rtype}.{name} (schema {version})")
    assert not problems, "\n".join(problems)
    google = {f"{t}.{n}" for t, named in cfg.resources.items() if t.startswith("google_") for n in named}
    assert checked, "nothing was checked"
    print(f"checked {len(checked)} of {len(google)} google resources: unchecked {sorted(google - checked)}")
