"""Static checks of terraform/ (no provider download: parsed with python-hcl2).

They assert what the deployment issue asks for: every resource exists and is
wired to the others, IAM grants nothing beyond the listed roles, the function
gets the whole environment contract, no secret value goes through Terraform,
and checkov finds nothing (with inline, reasoned skips only).
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


def _norm(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _norm(v) for k, v in node.items() if k not in ("__is_block__", "__comments__")}
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


def sa_ref(member: str) -> str:
    """'serviceAccount:${google_service_account.x.email}' -> 'x'."""
    m = re.fullmatch(r"serviceAccount:\$\{google_service_account\.([a-z0-9_]+)\.email\}", member)
    if m:
        return m.group(1)
    m = re.fullmatch(r"\$\{google_service_account\.([a-z0-9_]+)\.member\}", member)
    assert m, f"member is not one of this stack's service accounts: {member}"
    return m.group(1)


def sa_email_ref(value: str) -> str:
    m = re.fullmatch(r"google_service_account\.([a-z0-9_]+)\.(email|id|name)", expr(value))
    assert m, f"not a reference to a google_service_account: {value}"
    return m.group(1)


# --- layout -----------------------------------------------------------------


def test_layout():
    for name in ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "terraform.tfvars.example"):
        assert (TF / name).is_file(), f"terraform/{name} is missing"


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
        "looker_base_url",
        "schedule",
        "log_name",
        "run_budget_seconds",
    ):
        assert name in cfg.variables, name
        assert cfg.variables[name].get("validation"), f"variable {name} has no validation"
    assert cfg.variables["schedule"]["default"] == "*/10 * * * *"
    assert cfg.variables["log_name"]["default"] == "looker_system_activity_logs"
    assert "https://" in block(cfg.variables["looker_base_url"]["validation"])["condition"]


def test_tfvars_example_only_sets_declared_variables(cfg: Config):
    with (TF / "terraform.tfvars.example").open() as fh:
        example = _norm(hcl2.load(fh))
    assert {"project_id", "looker_base_url"} <= set(example)
    assert set(example) <= set(cfg.variables)


# --- APIs ---------------------------------------------------------------------


def test_required_apis_enabled(cfg: Config):
    _, svc = cfg.one("google_project_service")
    assert expr(svc["for_each"]) == "local.apis"
    listed = set(re.findall(r"[a-z]+\.googleapis\.com", str(cfg.locals["apis"])))
    assert listed >= REQUIRED_APIS, REQUIRED_APIS - listed
    assert svc["disable_on_destroy"] is False


# --- tick: scheduler -> topic -> function --------------------------------------


def test_scheduler_publishes_to_the_function_topic(cfg: Config):
    topic_name, _ = cfg.one("google_pubsub_topic")
    _, job = cfg.one("google_cloud_scheduler_job")
    assert expr(job["schedule"]) == "var.schedule"
    target = block(job["pubsub_target"])
    assert expr(target["topic_name"]) == f"google_pubsub_topic.{topic_name}.id"
    data = target["data"]
    m = re.fullmatch(r"\$\{base64encode\(\"(.+)\"\)\}", data)
    assert m and m.group(1), f"scheduler message must be non-empty: {data}"

    _, fn = cfg.one("google_cloudfunctions2_function")
    trigger = block(fn["event_trigger"])
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


def test_function_environment_covers_the_contract(cfg: Config):
    _, fn = cfg.one("google_cloudfunctions2_function")
    env = cfg.resolve(block(fn["service_config"])["environment_variables"])
    assert isinstance(env, dict)
    assert set(env) >= CONTRACT_ENV, CONTRACT_ENV - set(env)
    assert expr(env["GOOGLE_CLOUD_PROJECT"]) == "var.project_id"
    assert expr(env["LOG_NAME"]) == "var.log_name"
    secret_name, _ = cfg.one("google_secret_manager_secret")
    assert env["LOOKER_CREDENTIALS_SECRET"] == f"${{google_secret_manager_secret.{secret_name}.id}}/versions/latest"
    state_uri = cfg.resolve(env["STATE_URI"])
    assert re.fullmatch(r"gs://\$\{google_storage_bucket\.state\.name\}/[\w/.-]+\.json", state_uri), state_uri
    for key in CONTRACT_ENV - {"GOOGLE_CLOUD_PROJECT", "LOOKER_CREDENTIALS_SECRET", "STATE_URI"}:
        assert "var." in env[key], f"{key} should come from a variable: {env[key]}"


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
            if rtype == "google_project_iam_member":
                target = expr(res["project"])
            elif rtype == "google_secret_manager_secret_iam_member":
                target = expr(res["secret_id"])
            elif rtype == "google_storage_bucket_iam_member":
                target = expr(res["bucket"])
            elif rtype == "google_cloud_run_v2_service_iam_member":
                target = expr(res["name"])
            elif rtype == "google_cloud_run_service_iam_member":
                target = expr(res["service"])
            elif rtype == "google_artifact_registry_repository_iam_member":
                target = expr(res["repository"])
            elif rtype == "google_service_account_iam_member":
                target = expr(res["service_account_id"])
            else:
                raise AssertionError(f"unexpected IAM resource {rtype}.{name}")
            who = "pubsub-agent" if "@gcp-sa-pubsub." in member else sa_ref(member)
            grants.add((who, role, rtype, target))
    return grants


EXPECTED_GRANTS = {
    ("runtime", "roles/logging.logWriter", "google_project_iam_member", "var.project_id"),
    (
        "runtime",
        "roles/secretmanager.secretAccessor",
        "google_secret_manager_secret_iam_member",
        "google_secret_manager_secret.looker_credentials.secret_id",
    ),
    ("runtime", "roles/storage.objectUser", "google_storage_bucket_iam_member", "google_storage_bucket.state.name"),
    (
        "trigger",
        "roles/run.invoker",
        "google_cloud_run_v2_service_iam_member",
        "google_cloudfunctions2_function.exporter.service_config[0].service",
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
    assert sa_email_ref(block(fn["service_config"])["service_account_email"]) == "runtime"
    assert sa_email_ref(block(fn["event_trigger"])["service_account_email"]) == "trigger"
    assert sa_email_ref(block(fn["build_config"])["service_account"]) == "build"
    # the trigger's invoker grant is on this function's own service
    _, invoker = cfg.one("google_cloud_run_v2_service_iam_member")
    assert expr(invoker["name"]).startswith("google_cloudfunctions2_function.exporter.")
    # the build pushes into the repository it has write access to
    repo_name, _ = cfg.one("google_artifact_registry_repository")
    assert expr(block(fn["build_config"])["docker_repository"]) == f"google_artifact_registry_repository.{repo_name}.id"


# --- the secret ---------------------------------------------------------------------


SECRETISH = re.compile(r"password|passwd|client_secret|client_id|api_key|token|private_key|credential", re.I)


def test_secret_is_a_container_only(cfg: Config):
    _name, secret = cfg.one("google_secret_manager_secret")
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
    _, fn = cfg.one("google_cloudfunctions2_function")
    env = cfg.resolve(block(fn["service_config"])["environment_variables"])
    for key in env:
        assert not SECRETISH.search(key) or key == "LOOKER_CREDENTIALS_SECRET", key


def test_secret_add_version_command_works(cfg: Config, tmp_path: Path):
    """Render the output as Terraform would and run it with a fake gcloud."""
    name, _secret = cfg.one("google_secret_manager_secret")
    command = cfg.outputs["secret_add_version_command"]["value"]
    rendered = command.replace(f"${{google_secret_manager_secret.{name}.secret_id}}", "looker-audit-looker-credentials")
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
        "looker-audit-looker-credentials",
        "--project=my-project",
        "--data-file=-",
    ]
    payload = json.loads((tmp_path / "gcloud.stdin").read_text())
    assert set(payload) == {"client_id", "client_secret"}


# --- outputs --------------------------------------------------------------------


def test_outputs(cfg: Config):
    required = {
        "function_name",
        "function_uri",
        "topic",
        "runtime_service_account",
        "trigger_service_account",
        "secret_id",
        "secret_add_version_command",
        "logs_explorer_query",
        "logs_explorer_url",
    }
    assert required <= set(cfg.outputs), required - set(cfg.outputs)
    for name, out in cfg.outputs.items():
        assert out.get("description", "").strip(), f"output {name} has no description"
    query = cfg.resolve(cfg.outputs["logs_explorer_query"]["value"])
    assert query == 'logName="projects/${var.project_id}/logs/${var.log_name}"'
    url = cfg.outputs["logs_explorer_url"]["value"]
    assert url.startswith("https://console.cloud.google.com/logs/query;query=${urlencode(")
    assert url.endswith("?project=${var.project_id}")


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
