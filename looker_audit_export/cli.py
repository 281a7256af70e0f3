"""Command line: run one export outside functions-framework, or print the entries with ``--dry-run``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import logs
from .config import Config, ConfigError
from .credentials import CredentialsError, LookerCredentials, parse_payload
from .pipeline import ExportError, build_exporter
from .sink import JsonLinesSink


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m looker_audit_export",
        description="Export Looker System Activity to Cloud Logging. Configuration comes from the same "
                    "environment variables as the Cloud Function (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="run one export now")
    export.add_argument("--dry-run", action="store_true",
                        help="print the entries as JSON lines on stdout instead of writing them; "
                             "the cursor is read but not moved")
    export.add_argument("--credentials-file", type=Path,
                        help="read the Looker credentials from this JSON file "
                             '({"client_id": "...", "client_secret": "..."}) instead of Secret Manager')
    return parser


def _file_credentials(path: Path) -> LookerCredentials:
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"Cannot read the credentials file {path}: {exc.strerror}") from None
    return parse_payload(str(path), payload)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; exit 0 when everything read was written, 1 when not, 2 on bad configuration."""
    args = _parser().parse_args(argv)
    logs.configure(stream=sys.stderr)
    try:
        config = Config.from_env(os.environ, local=args.credentials_file is not None or args.dry_run)
        credentials = None
        if args.credentials_file is not None:
            credentials = _file_credentials(args.credentials_file)
            logs.mask_secret(credentials.client_secret)
        exporter = build_exporter(config, sink=JsonLinesSink(sys.stdout) if args.dry_run else None,
                                  credentials=credentials, read_only_state=args.dry_run,
                                  credentials_source=f"the credentials file {args.credentials_file}")
        summary = exporter.run()
    except (ConfigError, CredentialsError) as exc:
        print(f"error: {logs.redact(str(exc))}", file=sys.stderr)
        return 2
    except ExportError as exc:
        print(logs.redact(json.dumps({"error": str(exc), "summary": exc.summary.as_dict()})), file=sys.stderr)
        return 1
    print(json.dumps(summary.as_dict()), file=sys.stderr if args.dry_run else sys.stdout)
    return 0
