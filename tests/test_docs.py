"""The README and the docs/ pages: short README, working links, the pictured entry, and every command shown.

Every shell command in a ```sh block of README.md or docs/*.md, or in the text as `...`, is split into
its simple commands, and each is checked against what runs it: the CLI, benchmark, demo and dashboard
commands against their own argument parsers (the tests run those programs), ``functions-framework`` against
the command tests/test_function.py serves, ``terraform`` and ``gcloud`` against the names and outputs
terraform/ defines (the README's credentials step is run here with a fake gcloud), and the rest against the
files they name. A command of a program no checker knows fails the test: a new command in the docs needs a
test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from docs_pages import README, ROOT, doc_pages

from emulators.harness import FUNCTIONS_FRAMEWORK_COMMAND

TF = ROOT / "terraform"
# The root and the module it calls (terraform/modules/looker_audit_export/), not the examples.
TF_TEXT = "\n".join(
    path.read_text(encoding="utf-8")
    for path in sorted(TF.rglob("*.tf"))
    if not {".terraform", "examples"} & set(path.parts)
)
CONFIG_SOURCE = (ROOT / "looker_audit_export" / "config.py").read_text(encoding="utf-8")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the README --------------------------------------------------------------------------------------------


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move details to a page under docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert len(pages) >= 8
    for page in pages:
        assert f"](docs/{page.name})" in text, f"README.md does not link docs/{page.name}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (letters of any script kept), spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(match) for match in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def links() -> Iterator[tuple[Path, str]]:
    for page in doc_pages():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"[a-z]+:", target):
                yield page, target


def test_every_link_between_the_pages_leads_somewhere() -> None:
    checked = 0
    for page, target in links():
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        assert destination.exists(), f"{page.name}: link {target} leads to no file"
        if anchor:
            assert destination.suffix == ".md", f"{page.name}: {target}"
            assert anchor in anchors(destination), f"{page.name}: link {target}: no such heading"
        checked += 1
    assert checked >= 30


def test_the_pictured_entry_is_what_the_mapping_writes() -> None:
    """The README's JSON entry is a part of the golden entry tests/test_mapping.py proves the mapping makes."""
    blocks = re.findall(r"```json\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    shown = json.loads(blocks[0])
    golden = json.loads((ROOT / "tests" / "golden" / "create_dashboard.json").read_text(encoding="utf-8"))

    def within(part: Any, whole: Any, where: str) -> None:
        if isinstance(part, dict):
            assert isinstance(whole, dict), where
            for key, value in part.items():
                assert key in whole, f"{where}.{key} is not in the entry"
                within(value, whole[key], f"{where}.{key}")
        else:
            assert part == whole, f"{where}: {part!r} is shown, the entry holds {whole!r}"

    within(shown, golden, "entry")
    assert {"insertId", "timestamp", "severity", "logName", "labels", "protoPayload"} <= set(shown)


# --- the commands ------------------------------------------------------------------------------------------


def shell_blocks() -> list[tuple[str, str]]:
    found = []
    for page in doc_pages():
        for block in re.findall(r"^ *```sh\n(.*?)^ *```", page.read_text(encoding="utf-8"), flags=re.S | re.M):
            found.append((str(page.relative_to(ROOT)), block))
    return found


SEPARATORS = {"|", "||", "&&", ";", "(", ")", "$("}


def simple_commands(block: str) -> list[list[str]]:
    """The block's simple commands as word lists (comments dropped, continued lines joined, pipes split)."""
    text = re.sub(r"\\\n", " ", block)
    commands: list[list[str]] = []
    for line in text.splitlines():
        line = re.sub(r'"\$\((.*)\)"', r" $( \1 ) ", line)  # a quoted command substitution: its commands
        lexer = shlex.shlex(line.replace("$(", " $( "), posix=True, punctuation_chars="|&;()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for word in lexer:
            if word in SEPARATORS or word == "$":
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
        if current:
            commands.append(current)
    return commands


def parses(parser: Any, args: list[str]) -> None:
    try:
        parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{parser.prog} refuses {args}: exit {exc.code}")


#: Variables the docs set for a test run, and the test file that reads each.
TEST_ENV = {"TFSTANDIN": "tests/test_terraform_plan.py"}


def env_name_known(name: str) -> None:
    """A variable the docs set is one the exporter reads (config.py), the docs' own PROJECT_ID, a test's, or
    the test command's (scripts/test.sh)."""
    if name in TEST_ENV:
        assert f'"{name}"' in (ROOT / TEST_ENV[name]).read_text(encoding="utf-8"), name
        return
    known = name == "PROJECT_ID" or f'"{name}"' in CONFIG_SOURCE
    known = known or "${" + name + ":-" in (ROOT / "scripts" / "test.sh").read_text()
    assert known, f"{name} is not a variable the exporter or the test command reads"


def check_python(args: list[str]) -> None:
    if args[:2] == ["-m", "looker_audit_export"]:
        from looker_audit_export.cli import build_parser

        parses(build_parser(), args[2:])
    elif args[:2] == ["-m", "emulators"]:
        from emulators.__main__ import parse_args

        try:
            parse_args(args[2:])
        except SystemExit as exc:
            pytest.fail(f"python -m emulators refuses {args[2:]}: exit {exc.code}")
    elif args[:1] == ["benchmarks/bench.py"]:
        parses(load(ROOT / "benchmarks" / "bench.py").arguments(), args[1:])
    elif args[:1] == ["scripts/draw_dashboard.py"]:
        assert "matplotlib" in (ROOT / "requirements-dev.in").read_text(), "the docs say it needs matplotlib"
        parses(load(ROOT / "scripts" / "draw_dashboard.py").arguments(), args[1:])
    elif args[:2] == ["-m", "pytest"]:
        files = [arg for arg in args[2:] if not arg.startswith("-")]
        assert files and all((ROOT / f).is_file() for f in files), files
        assert set(args[2:]) - set(files) <= {"-q", "-x"}
    elif args[:1] == ["-c"]:
        # The docs' one-liner that picks an instance's cursor out of `terraform output -json state_uris`.
        done = subprocess.run([sys.executable, "-c", args[1]], input='{"prod": "gs://b/prod/state.json"}',
                              capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout == "gs://b/prod/state.json\n"
    else:
        pytest.fail(f"no check for python {args}")


def check_script(name: str) -> Callable[[list[str]], None]:
    def check(args: list[str]) -> None:
        path = ROOT / name
        assert path.stat().st_mode & stat.S_IXUSR, f"{name} is not executable"
        if name == "scripts/demo.sh":
            assert "scripts/demo.py" in path.read_text()
            parses(load(ROOT / "scripts" / "demo.py").arguments(), args)
        elif name == "scripts/bootstrap.sh":
            assert not args
        elif name == "scripts/test.sh":
            assert '"$@"' in path.read_text(), "test.sh hands its arguments to pytest"
            assert all((ROOT / arg).is_file() for arg in args if not arg.startswith("-")), args
            assert "exec scripts/test.sh" in (ROOT / ".ci" / "run").read_text(), "CI runs the README's command"
        elif name == "scripts/lock.sh":
            assert '"$@"' in path.read_text(), "lock.sh hands its arguments to pip-compile"
            options = subprocess.run([str(ROOT / ".venv" / "bin" / "pip-compile"), "--help"], capture_output=True,
                                     text=True, timeout=60, check=True).stdout
            for arg in args:
                if arg.startswith("-"):
                    assert re.search(rf"(^|\s){re.escape(arg)}\b", options), f"pip-compile has no {arg}"
    return check


def check_functions_framework(args: list[str]) -> None:
    assert ("functions-framework", *args[: len(FUNCTIONS_FRAMEWORK_COMMAND) - 1]) == FUNCTIONS_FRAMEWORK_COMMAND
    assert args[len(FUNCTIONS_FRAMEWORK_COMMAND) - 1:] in ([], ["--port", "8080"])


def tf_output_names() -> set[str]:
    return set(re.findall(r'^output "([^"]+)"', TF_TEXT, flags=re.M))


def check_terraform(args: list[str]) -> None:
    directory = TF
    if args[:1] == ["-chdir=terraform"]:
        args = args[1:]
    elif args[0].startswith("-chdir=terraform/examples/"):
        # An example: a root of its own beside the module (tests/test_terraform_plan.py plans it).
        directory = ROOT / args[0].removeprefix("-chdir=")
        assert (directory / "main.tf").is_file(), args[0]
        args = args[1:]
    verb, rest = args[0], args[1:]
    outputs = set(re.findall(r'^output "([^"]+)"', "\n".join(p.read_text() for p in directory.glob("*.tf")), re.M))
    if verb == "output":
        names = [arg for arg in rest if not arg.startswith("-")]
        assert len(names) == 1 and names[0] in tf_output_names() & outputs, f"terraform output {rest}"
        assert set(rest) - set(names) <= {"-json", "-raw"}
    elif verb in ("apply", "destroy", "plan"):
        assert rest in ([], ["-var-file=terraform.tfvars"])
        assert (directory / "terraform.tfvars.example").is_file()
        tfvars = (directory / "terraform.tfvars").relative_to(ROOT).as_posix()
        ignored = subprocess.run(["git", "check-ignore", "-q", tfvars], cwd=ROOT, check=False)
        assert ignored.returncode == 0, "the tfvars stay out of git"
    elif verb == "init":
        # -upgrade: after the module appeared (it must be installed) or the provider floor rose.
        assert rest in ([], ["-upgrade"])
    elif verb == "fmt":
        assert rest == ["-check"]
    elif verb == "state":
        assert rest[0] == "rm" and len(rest) == 2
        # The resources live in the module the root calls (terraform/main.tf).
        assert rest[1].startswith("module.looker_audit_export."), rest[1]
        assert 'module "looker_audit_export"' in TF_TEXT
        kind, name = rest[1].removeprefix("module.looker_audit_export.").split(".")
        assert f'resource "{kind}" "{name}"' in TF_TEXT, rest[1]
    else:
        pytest.fail(f"no check for terraform {args}")


# The names Terraform gives an instance "prod" with the defaults (name_prefix looker-audit, region us-central1),
# each with the expression in terraform/ that makes it.
TF_NAMES = {
    "looker-audit-prod-tick": 'name        = "${var.name_prefix}-${each.key}-tick"',
    "looker-audit-prod-export": 'function_name            = "${var.name_prefix}-${key}-export"',
    "looker-audit-prod-looker-credentials": 'secret_id = "${var.name_prefix}-${each.key}-looker-credentials"',
    "looker-audit-audit": 'log_bucket_id = "${var.name_prefix}-audit"',
}


def tf_default(variable: str) -> str:
    found = re.search(rf'variable "{variable}" \{{.*?\n  default\s*=\s*"([^"]+)"', TF_TEXT, re.S)
    assert found, variable
    return found.group(1)


def check_gcloud(args: list[str]) -> None:
    """gcloud's commands (https://cloud.google.com/sdk/gcloud/reference) on the resources Terraform names."""
    assert tf_default("name_prefix") == "looker-audit" and tf_default("region") == "us-central1"
    for name, expression in TF_NAMES.items():
        assert expression in TF_TEXT, f"terraform/ no longer names {name} by {expression}"
    words = [arg for arg in args if not arg.startswith("-")]
    flags = dict(arg.partition("=")[::2] for arg in args if arg.startswith("--"))
    # A Shared VPC's subnetwork is in its host project ($HOST_PROJECT_ID, docs/networking.md).
    assert "--project" not in flags or flags["--project"] in ("$PROJECT_ID", "my-project-id", "$HOST_PROJECT_ID")
    for name in words:
        if name.startswith("looker-audit"):
            assert name in TF_NAMES, f"Terraform creates no {name}"
    if words[:3] == ["scheduler", "jobs", "run"]:
        assert words[3] == "looker-audit-prod-tick" and flags["--location"] == "us-central1"
        assert "gcloud scheduler jobs run ${j.name} --location=${var.region} --project=${var.project_id}" in TF_TEXT
    elif words[:3] == ["functions", "logs", "read"]:
        assert words[3] == "looker-audit-prod-export" and flags["--region"] == "us-central1" and "--gen2" in args
    elif words[:3] == ["secrets", "versions", "add"]:
        assert words[3] == "looker-audit-prod-looker-credentials" and flags["--data-file"] == "-"
    elif words == ["logging", "read"]:
        assert not flags
    elif words[:2] == ["logging", "read"]:
        assert re.fullmatch(r'(logName="projects/\$PROJECT_ID/logs/looker_system_activity_logs"'
                            r'|labels\.event_name="login_failure")', words[2]), words[2]
        if "--bucket" in flags:
            assert flags["--bucket"] == "looker-audit-audit" and flags["--view"] == "_AllLogs"
    elif words[:4] == ["compute", "networks", "subnets", "update"]:
        # The command the plan's Private Google Access check prints (network.tf), with the same flags.
        assert words[4] == "looker-functions", "the subnetwork of the examples' terraform.tfvars.example"
        assert [a for a in args if a.startswith("-")] in (
            ["--project=$PROJECT_ID", "--region=us-central1", "--enable-private-ip-google-access"],
            ["--project=$HOST_PROJECT_ID", "--region=us-central1", "--enable-private-ip-google-access"],
        ), args
        assert (
            "gcloud compute networks subnets update ${local.subnetwork_parts.name} "
            "--project=${local.subnetwork_parts.project} --region=${local.subnetwork_parts.region} "
            "--enable-private-ip-google-access"
        ) in TF_TEXT
    elif words[:4] == ["compute", "networks", "subnets", "add-iam-policy-binding"]:
        # Shared VPC: the Cloud Run service agent may use the host project's subnetwork
        # (https://docs.cloud.google.com/run/docs/configuring/shared-vpc-direct-vpc).
        assert flags["--role"] == "roles/compute.networkUser" and flags["--region"] == "us-central1"
        assert re.fullmatch(r"serviceAccount:service-PROJECT_NUMBER@serverless-robot-prod\.iam\.gserviceaccount\.com",
                            flags["--member"])
    elif words[:2] == ["storage", "cat"]:
        assert not words[2:], "the cursor's URI comes from terraform output state_uris"
        assert 'environment_variables["STATE_URI"]' in TF_TEXT
    elif words[:2] == ["auth", "application-default"]:
        assert words[2:] == ["login"]
    elif words[:2] == ["services", "enable"]:
        assert words[2:] == ["serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com"]
    else:
        pytest.fail(f"no check for gcloud {args}")


def check_export(args: list[str]) -> None:
    for arg in args:
        name, _, _value = arg.partition("=")
        env_name_known(name)


def check_cd(args: list[str]) -> None:
    assert args == ["terraform"] and TF.is_dir()


def check_cp(args: list[str]) -> None:
    assert args == ["terraform.tfvars.example", "terraform.tfvars"] and (TF / args[0]).is_file()


def check_source(args: list[str]) -> None:
    assert args == [".venv/bin/activate"]
    assert "-m venv .venv" in (ROOT / "scripts" / "bootstrap.sh").read_text(), "bootstrap.sh creates .venv"


def shell_tool(args: list[str]) -> None:
    """read, printf, mktemp, chmod, rm, unset, echo, head, date, kill, $EDITOR: the shell's and coreutils' own."""


def check_eval(args: list[str]) -> None:
    """``eval "$(python -m emulators --env)"``: its inner command is checked as a command of its own, and the
    whole block runs in tests/test_first_contact.py."""
    assert args == [], args


def check_curl(args: list[str]) -> None:
    """The tick posted by hand: the block runs against functions-framework in tests/test_first_contact.py."""
    assert "ce-type: google.cloud.pubsub.topic.v1.messagePublished" in args, args


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "python": check_python,
    "python3": check_python,
    ".venv/bin/python": check_python,
    "scripts/demo.sh": check_script("scripts/demo.sh"),
    "scripts/test.sh": check_script("scripts/test.sh"),
    "scripts/bootstrap.sh": check_script("scripts/bootstrap.sh"),
    "scripts/lock.sh": check_script("scripts/lock.sh"),
    "functions-framework": check_functions_framework,
    "terraform": check_terraform,
    "gcloud": check_gcloud,
    "export": check_export,
    "cd": check_cd,
    "cp": check_cp,
    "source": check_source,
    "eval": check_eval,
    "curl": check_curl,
    **{tool: shell_tool for tool in ("read", "printf", "mktemp", "chmod", "rm", "unset", "echo", "head",
                                     "date", "kill", "$EDITOR")},
}


INLINE = re.compile(r"`((?:scripts/[a-z_]+\.(?:sh|py)|python3? |\.venv/bin/python |terraform |gcloud "
                    r"|functions-framework )[^`]*)`")


def inline_commands() -> list[tuple[str, str]]:
    """Commands shown in the text (`...`): a synopsis's [optional] parts left out, its placeholders filled in."""
    found = []
    for page in doc_pages():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for command in INLINE.findall(text):
            command = re.sub(r" \[[^\]]*\]", "", command.replace("\n", " ")).replace("YYYY-MM-DD", "2026-11-01")
            found.append((str(page.relative_to(ROOT)), re.sub(r" N\b", " 10000", command)))
    return found


def all_commands() -> list[tuple[str, list[str]]]:
    return [(page, words) for page, block in shell_blocks() + inline_commands() for words in simple_commands(block)]


def test_the_docs_show_the_commands_a_user_needs() -> None:
    programs = {words[0] for _page, words in all_commands()}
    assert {"scripts/demo.sh", "scripts/test.sh", "terraform", "gcloud", "python"} <= programs
    readme = [words for page, words in all_commands() if page == "README.md"]
    assert ["scripts/demo.sh"] in readme and ["scripts/test.sh"] in readme


@pytest.mark.parametrize(("page", "words"), all_commands(),
                         ids=lambda value: value if isinstance(value, str) else " ".join(value)[:60])
def test_each_command_in_the_docs_is_checked(page: str, words: list[str]) -> None:
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name = words.pop(0).split("=", 1)[0]
        if words and words[0] != "$":
            env_name_known(name)
    if not words:
        return
    program, args = words[0], words[1:]
    assert program in CHECKS, f"{page}: no test checks the command {words}; add one to tests/test_docs.py"
    CHECKS[program](args)


def test_the_readme_credentials_command_sends_json_to_the_secret(tmp_path: Path) -> None:
    """Run the README's step 3 as a user would, with a fake gcloud that records what it was given."""
    block = next(block for page, block in shell_blocks() if page == "README.md" and "read -rs" in block)
    fake = tmp_path / "gcloud"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$0.args"\ncat > "$0.stdin"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    secret = "Gq7zT9kXw2mVb4Rd"  # an API3 client secret is letters and digits
    subprocess.run(["bash", "-c", block], input=f"my-id\n{secret}\n", text=True, check=True, timeout=30,
                   env=dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", PROJECT_ID="my-project-id"))
    args = (tmp_path / "gcloud.args").read_text().split("\n")[:-1]
    assert args == ["secrets", "versions", "add", "looker-audit-prod-looker-credentials", "--project=my-project-id",
                    "--data-file=-"]
    assert json.loads((tmp_path / "gcloud.stdin").read_text()) == {"client_id": "my-id", "client_secret": secret}


def test_the_demo_runs_one_tick_end_to_end() -> None:
    """What scripts/demo.sh runs once it has installed: the emulators, one tick, the entries written."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--events", "2000", "--show", "1"],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The function answered HTTP 200 (done)" in done.stdout
    assert '"insertId": "looker-' in done.stdout
    assert done.stdout.startswith("Starting the local emulators")  # it says what it does
    assert "were left for the next run: they are younger than SETTLE_SECONDS" in done.stdout  # held back, in words
    assert "chttp2" not in done.stdout + done.stderr and "goaway" not in (done.stdout + done.stderr).lower()


def test_the_demo_says_what_it_installs_and_how_long_it_takes() -> None:
    """scripts/demo.sh speaks before the install (silent for about 2 minutes the first time) and shows pip's
    own output only when the install fails (run here it would replace the shared .venv: read, not run)."""
    script = (ROOT / "scripts" / "demo.sh").read_text()
    say, install = script.index('echo "Installing'), script.index("scripts/bootstrap.sh")
    assert say < install and "2 minutes the first time" in script[say:install]
    assert 'scripts/bootstrap.sh >"$install_log" 2>&1' in script and 'cat "$install_log"' in script
