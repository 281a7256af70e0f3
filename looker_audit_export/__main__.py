"""``python -m looker_audit_export``: see ``cli``."""

from .cli import main

raise SystemExit(main())
