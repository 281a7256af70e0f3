"""Write the Inputs and Outputs tables of terraform/modules/looker_audit_export/README.md.

The tables list every variable (name, description, type, default, required) and every output (name,
description) of the module, the way terraform-google-modules document theirs. They are generated from
variables.tf and outputs.tf (parsed with python-hcl2) between the markers of the README, so they cannot drift;
tests/test_terraform.py checks that the README holds what this script writes.

    python scripts/module_readme.py          # rewrite the tables
    python scripts/module_readme.py --check  # exit 1 if the README is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "terraform" / "modules" / "looker_audit_export"
README = MODULE / "README.md"
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"
_META = ("__is_block__", "__comments__", "__inline_comments__")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r'\\(["\\])', r"\1", value[1:-1])
    return value


def _norm(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _norm(v) for k, v in node.items() if k not in _META}
    if isinstance(node, list):
        return [_norm(v) for v in node]
    return _unquote(node) if isinstance(node, str) else node


def _blocks(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    with path.open() as fh:
        doc = _norm(hcl2.load(fh))
    out: dict[str, dict[str, Any]] = {}
    for item in doc.get(kind, []):
        out.update(item)
    return out


def one_line(text: str) -> str:
    text = re.sub(r"^<<-?EOT\s*|\s*EOT$", "", text.strip())
    return re.sub(r"\s+", " ", text).strip().replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _type(value: str) -> str:
    m = re.fullmatch(r"\$\{(.*)\}", value, re.S)
    return one_line(m.group(1) if m else value)


def _default(var: dict[str, Any]) -> str:
    if "default" not in var:
        return "n/a"
    value = var["default"]
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{(.*)\}", value, re.S)
        return f"`{one_line(m.group(1))}`" if m else f'`"{value}"`'
    return f"`{json.dumps(value)}`"


def tables() -> str:
    """The generated part of the README: the Inputs and Outputs tables."""
    lines = ["## Inputs", "", "| Name | Description | Type | Default | Required |", "|---|---|---|---|:---:|"]
    for name, var in _blocks(MODULE / "variables.tf", "variable").items():
        required = "no" if "default" in var else "yes"
        lines.append(
            f"| {name} | {one_line(var['description'])} | `{_type(var['type'])}` | {_default(var)} | {required} |"
        )
    lines += ["", "## Outputs", "", "| Name | Description |", "|---|---|"]
    for name, out in _blocks(MODULE / "outputs.tf", "output").items():
        lines.append(f"| {name} | {one_line(out['description'])} |")
    return "\n".join(lines)


def render(readme: str) -> str:
    """The README with the text between its markers replaced by tables()."""
    head, found, rest = readme.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"{README} must hold {BEGIN} and {END}")
    return f"{head}{BEGIN}\n{tables()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if the README is out of date")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if current != wanted:
            print(f"{README.relative_to(ROOT)} is out of date: run python scripts/module_readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
