"""Static checks of terraform/ (no provider download: parsed with python-hcl2).

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

ROOT = Path(__file__).resolve().parent.parent
TF = ROOT / "terraform"

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


EACH = "[each.key]"


def sa_ref(member: str) -> str:
    """'serviceAccount:${google_service_account.x.email}' -> 'x' ('x[each.key]' for a per-instance one)."""
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
        "outputs.tf",
        "terraform.tfvars.example",
    ):
        assert (TF / name).is_file(), f"terraform/{name} is missing"


def test_locals_only_files_hold_only_locals():
    """instances.tf and signals.tf are evaluated alone by `terraform console`."""
    for name in ("instances.tf", "signals.tf", "source_excludes.tf"):
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
    with (TF / "terraform.tfvars.example").open() as fh:
        example = _norm(hcl2.load(fh))
    assert {"project_id", "looker_instances"} <= set(example)
    assert set(example) <= set(cfg.variables)
    instances = example["looker_instances"]
    assert instances and all(i["base_url"].startswith("https://") for i in instances.values())
    # Every commented-out optional line names a declared variable.
    text = (TF / "terraform.tfvars.example").read_text()
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
    "google_project_iam_member": {"build_log_writer"},
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
    _, fn = cfg.one("google_cloudfunctions2_function")
    env = cfg.resolve(block(fn["service_config"])["environment_variables"])
    assert isinstance(env, dict)
    return env


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
            who = "pubsub-agent" if "@gcp-sa-pubsub." in member else sa_ref(member)
            # A per-instance grant must iterate the instances, or [each.key] would not exist.
            assert per_instance(res) == (EACH in who or EACH in target), f"{rtype}.{name}"
            grants.add((who, role, rtype, target))
    return grants


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
        "pubsub-agent",
        "roles/iam.serviceAccountTokenCreator",
        "google_service_account_iam_member",
        "google_service_account.trigger.name",
    ),
    ("build", "roles/logging.logWriter", "google_project_iam_member", "var.project_id"),
    (
        "build",
        "roles/artifactregistry.writer",
        "google_artifact_registry_repository_iam_member",
        "google_artifact_registry_repository.functions.name",
    ),
    ("build", "roles/storage.objectViewer", "google_storage_bucket_iam_member", "google_storage_bucket.source.name"),
}


def test_iam_grants_exactly_the_listed_roles(cfg: Config):
    assert _grants(cfg) == EXPECTED_GRANTS


def test_no_primitive_or_project_wide_secret_or_storage_roles(cfg: Config):
    for who, role, rtype, _ in _grants(cfg):
        assert role not in PRIMITIVE_ROLES, (who, role)
        if rtype == "google_project_iam_member":
            assert not role.startswith(("roles/secretmanager.", "roles/storage.")), (who, role)


def test_service_accounts_are_wired(cfg: Config):
    sas = cfg.resources["google_service_account"]
    assert {"runtime", "trigger", "build"} <= set(sas)
    _, fn = cfg.one("google_cloudfunctions2_function")
    # Each function runs as its own instance's account.
    assert sa_email_ref(block(fn["service_config"])["service_account_email"]) == f"runtime{EACH}"
    assert sa_email_ref(block(fn["event_trigger"])["service_account_email"]) == "trigger"
    assert sa_email_ref(block(fn["build_config"])["service_account"]) == "build"
    # the trigger's invoker grant is on each function's own service
    _, invoker = cfg.one("google_cloud_run_v2_service_iam_member")
    assert expr(invoker["name"]).startswith(f"google_cloudfunctions2_function.exporter{EACH}.")
    # the build pushes into the repository it has write access to
    repo_name, _ = cfg.one("google_artifact_registry_repository")
    assert expr(block(fn["build_config"])["docker_repository"]) == f"google_artifact_registry_repository.{repo_name}.id"


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
    text = "\n".join(p.read_text() for p in sorted(TF.glob("*.tf")))
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
    assert set(fields) == SECURITY_SIGNALS | HEALTH_SIGNALS
    assert alerts["default"] == {}
    assert "if var.alerts[k]" in cfg.locals["enabled_security_signals"]
    for rtype in ("google_logging_metric", "google_monitoring_alert_policy"):
        assert expr(cfg.resources[rtype]["security"]["for_each"]) == "local.enabled_security_signals"
    health = {
        ("google_logging_metric", "exporter_lag"): "exporter_lag",
        ("google_monitoring_alert_policy", "exporter_lag"): "exporter_lag",
        ("google_monitoring_alert_policy", "exporter_failures"): "exporter_failures",
        ("google_monitoring_alert_policy", "exporter_no_success"): "exporter_no_success",
    }
    for (rtype, name), switch in health.items():
        assert expr(cfg.resources[rtype][name]["count"]) == f"var.alerts.{switch} ? 1 : 0", (rtype, name)
    # The run counters follow the alert that reads them.
    assert expr(cfg.resources["google_logging_metric"]["exporter_runs"]["for_each"]) == "local.enabled_run_counters"
    assert "if var.alerts[c.alert]" in cfg.locals["enabled_run_counters"]
    counters = cfg.locals["run_counters"]
    assert {k: c["alert"] for k, c in counters.items()} == {"failed": "exporter_failures",
                                                             "successful": "exporter_no_success"}


def test_every_alert_policy_notifies_the_channels(cfg: Config):
    policies = cfg.resources["google_monitoring_alert_policy"]
    assert set(policies) == {"security"} | HEALTH_SIGNALS
    for name, policy in policies.items():
        assert expr(policy["notification_channels"]) == "var.notification_channels", name
        assert block(policy["documentation"])["content"].strip(), name
        condition = block(policy["conditions"])
        inner = condition.get("condition_threshold") or condition.get("condition_absent")
        metric_ref = re.search(r"google_logging_metric\.(\w+)", block(inner)["filter"])
        assert metric_ref, f"{name} must alert on this stack's log-based metric"
        assert metric_ref.group(1) in cfg.resources["google_logging_metric"]
    assert cfg.variables["notification_channels"]["default"] == []
    assert "notificationChannels/" in block(cfg.variables["notification_channels"]["validation"])["condition"]


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
    lag = metrics["exporter_lag"]
    assert lag["value_extractor"] == "EXTRACT(jsonPayload.summary.lag_seconds)"
    assert block(lag["metric_descriptor"])["value_type"] == "DISTRIBUTION"
    assert "jsonPayload.summary.lag_seconds>=0" in lag["filter"]
    counters = cfg.locals["run_counters"]
    assert 'jsonPayload.message=~\\"^Looker export failed\\"' in counters["failed"]["filter"] or (
        'jsonPayload.message=~"^Looker export failed"' in counters["failed"]["filter"]
    )
    assert "severity>=ERROR" in counters["failed"]["filter"]
    assert "Looker export finished" in counters["successful"]["filter"]
    for name, filter_ in (("exporter_lag", lag["filter"]), *((k, c["filter"]) for k, c in counters.items())):
        assert filter_.startswith("${local.function_log_filter} AND "), name
    runs = metrics["exporter_runs"]
    assert expr(runs["filter"]) == "each.value.filter"
    assert runs["name"] == "${var.name_prefix}/exporter_${each.key}_runs"
    for metric in (lag, runs):
        assert metric["label_extractors"] == {"function": "EXTRACT(resource.labels.service_name)"}
    policies = cfg.resources["google_monitoring_alert_policy"]
    lag_condition = block(block(policies["exporter_lag"]["conditions"])["condition_threshold"])
    assert expr(lag_condition["threshold_value"]) == "var.exporter_max_lag_seconds"
    assert cfg.variables["exporter_max_lag_seconds"]["default"] == 3600
    absent = block(block(policies["exporter_no_success"]["conditions"])["condition_absent"])
    assert absent["duration"] == "${var.exporter_max_lag_seconds}s"


def test_run_metrics_keep_their_state_from_their_counted_resources(cfg: Config):
    moves = {expr(m["from"]): expr(m["to"]) for m in cfg.moved}
    assert moves == {
        "google_logging_metric.exporter_failures[0]": 'google_logging_metric.exporter_runs["failed"]',
        "google_logging_metric.exporter_runs[0]": 'google_logging_metric.exporter_runs["successful"]',
    }


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
    for name in ("variables.tf", "instances.tf", "signals.tf"):
        shutil.copy(TF / name, tmp_path / name)
    (tmp_path / "test.tfvars").write_text(tfvars)
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    result = subprocess.run(
        [terraform, "console", "-var-file=test.tfvars"],
        input=f"jsonencode({expression})\n",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(re.sub(r"\x1b\[[0-9;]*m", "", result.stderr))
    return json.loads(json.loads(result.stdout.strip().splitlines()[-1]))


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
    ],
)
def test_instances_are_validated(tmp_path: Path, instances: str, message: str):
    with pytest.raises(ValueError, match="Invalid value for variable") as err:
        _console(tmp_path, "local.instances", f'project_id = "my-project-id"\nlooker_instances = {instances}\n')
    assert message in " ".join(str(err.value).split())


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
    only_successes = _console(tmp_path, "local.enabled_run_counters",
                              TWO_INSTANCES + "alerts = { exporter_failures = false }\n")
    assert set(only_successes) == {"successful"}


def test_signal_filters(tmp_path: Path):
    signals = _console(tmp_path, "local.security_signals", TWO_INSTANCES)
    log = 'logName="projects/my-project-id/logs/looker_system_activity_logs"'
    assert set(signals) == SECURITY_SIGNALS
    for name, signal in signals.items():
        assert signal["filter"].startswith(log + " AND "), name
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

    no_sudo = TWO_INSTANCES + "alerts = { sudo_sessions = false }\n"
    enabled = _console(tmp_path, "keys(local.enabled_security_signals)", no_sudo)
    assert set(enabled) == SECURITY_SIGNALS - {"sudo_sessions"}

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


def _inline_skips() -> list[tuple[str, str]]:
    skips = []
    for path in sorted(TF.glob("*.tf")):
        for m in re.finditer(r"#\s*checkov:skip=([A-Z0-9_]+)(?::\s*(.*))?", path.read_text()):
            skips.append((m.group(1), (m.group(2) or "").strip()))
    return skips


def test_checkov_skips_are_inline_and_reasoned():
    for check, reason in _inline_skips():
        assert len(reason) >= 20, f"checkov skip of {check} needs a reason"
    for cfg_file in (".checkov.yaml", ".checkov.yml"):
        assert not (ROOT / cfg_file).exists() and not (TF / cfg_file).exists(), "no global checkov skips"


def test_checkov_passes():
    exe = os.environ.get("CHECKOV") or shutil.which("checkov")
    if not exe:
        message = "checkov not found: set CHECKOV=/path/to/checkov or put it on PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [
            exe,
            "-d",
            str(TF),
            "--framework",
            "terraform",
            "--quiet",
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
    assert summary["skipped"] == len(_inline_skips())
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
