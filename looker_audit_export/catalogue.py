"""The Looker event names, categories and query sources this project relies on, each with its source.

Only what a Looker or Google page documents is listed here; every entry names the page (URL) where
it was seen. The severity table (``entries.events.severity``), the emulator's synthetic data
(``emulators/looker_data.py``) and the Terraform security signals (``terraform/modules/looker_audit_export/signals.tf``,
checked in ``tests/test_catalogue.py``) are built on this module and nothing else.

Looker adds events in every release and documents only some of them: an event that is not
listed here is exported unchanged, at the severity the generic rules below give it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: "Looker events": the list of event types, with each one's attributes (no categories), and the
#: common fields: ``name`` "for example, create_dashboard", ``category`` "for example, dashboard",
#: and ``sudo_user_id``, the admin impersonating ``user_id``.
EVENTS_PAGE = "https://cloud.google.com/looker/docs/events"
#: "Looker (Google Cloud core) audit logging": Looker events as Cloud Audit Logs methods
#: ``lookerapp.event.<category>.<name>``, which give the category of each one listed.
AUDIT_LOGGING_PAGE = "https://cloud.google.com/looker/docs/looker-core-audit-logging"
#: "Creating usage and metadata reports with System Activity Explores": example event names, and
#: the documented values of ``history.source``.
SYSTEM_ACTIVITY_PAGE = "https://cloud.google.com/looker/docs/usage-reports-with-system-activity-explores"


@dataclass(frozen=True, slots=True)
class DocumentedEvent:
    """One Looker event as documented: its name, its category (None: no source gives it) and attributes.

    ``attributes`` are the ones the source lists, in its order; () when it lists none.
    """

    name: str
    category: str | None
    attributes: tuple[str, ...]
    source: str


EVENTS: tuple[DocumentedEvent, ...] = (
    # Categories from the Cloud Audit Logs methods (lookerapp.event.<category>.<name>).
    DocumentedEvent("login", "authentication", (), AUDIT_LOGGING_PAGE),
    DocumentedEvent("login_failure", "authentication", (), AUDIT_LOGGING_PAGE),
    DocumentedEvent("inactivity_logout", "authentication", (), AUDIT_LOGGING_PAGE),  # a System Event log
    DocumentedEvent("enable_login_notification", "settings", (), AUDIT_LOGGING_PAGE),  # Admin Activity
    DocumentedEvent("disable_login_notification", "settings", (), AUDIT_LOGGING_PAGE),
    DocumentedEvent("set_login_notification_text", "settings", (), AUDIT_LOGGING_PAGE),
    DocumentedEvent("remove_login_notification_text", "settings", (), AUDIT_LOGGING_PAGE),
    DocumentedEvent("scheduler_execute", "scheduler", (), AUDIT_LOGGING_PAGE),
    DocumentedEvent("scheduler_deliver", "scheduler", (), AUDIT_LOGGING_PAGE),
    # The example name and the example category of the same table of common fields.
    DocumentedEvent("create_dashboard", "dashboard", (), EVENTS_PAGE),
    # The list of event types: names and attributes, no category.
    DocumentedEvent("accept_integration_hub_legal_agreement", None, (), EVENTS_PAGE),
    DocumentedEvent("account_manually_unlocked", None, ("key", "user_id"), EVENTS_PAGE),
    DocumentedEvent("acquire_cookieless_embed_session", None, (), EVENTS_PAGE),
    DocumentedEvent("activate_oauth_client_app_user", None, ("app_client_guid", "app_display_name", "ip", "user_id"),
                    EVENTS_PAGE),
    DocumentedEvent("add_external_email_to_scheduled_task", None, ("scheduled_task_id", "external email"),
                    EVENTS_PAGE),
    DocumentedEvent("add_group_group", None, ("parent_group_id", "adding_group_id", "deleting_group_id"),
                    EVENTS_PAGE),
    DocumentedEvent("add_group_user", None, ("group_id",), EVENTS_PAGE),
    # Named in the System Activity page's examples.
    DocumentedEvent("user_permission_elevation", None, (), SYSTEM_ACTIVITY_PAGE),  # "permission changes"
    DocumentedEvent("update_labs_feature", None, ("labs_feature_id", "labs_feature_value"), SYSTEM_ACTIVITY_PAGE),
    DocumentedEvent("rename_project_file", None, (), SYSTEM_ACTIVITY_PAGE),
)

BY_NAME = {event.name: event for event in EVENTS}
#: Every documented category, and the page that documents it.
CATEGORIES = {event.category: event.source for event in EVENTS if event.category is not None}

#: ``history.source`` values, from the History Explore's "Possible values" (``SYSTEM_ACTIVITY_PAGE``).
HISTORY_SOURCES = frozenset({
    "alerts", "api", "api3", "authenticated_download", "dashboard", "dashboard_prefetch", "data-download-api",
    "drill_modal", "explore", "guided_analysis", "internal", "look", "merge_query", "private_embed", "public_url",
    "regenerator", "render_manager_cache", "scheduled_task", "sql_interface", "sqlrunner", "suggest",
})
#: The ``history.source`` values that are downloads: a dashboard downloaded as CSV
#: (``data-download-api``), a Look or dashboard downloaded as PDF or PNG (``render_manager_cache``),
#: results streamed through the Action Hub (``authenticated_download``). No event carries a download
#: or a row count, so downloads are counted in the query history.
DOWNLOAD_SOURCES = frozenset({"data-download-api", "render_manager_cache", "authenticated_download"})

# --- the severity table ----------------------------------------------------------------------

#: Documented events that report a failure: WARNING. (The generic rule below catches the rest.)
WARNING_EVENTS = frozenset({"login_failure"})
#: Generic rule: any name with one of these endings reports a failure: WARNING.
FAILURE_SUFFIXES = ("_failure", "_failed", "_error")
#: Documented events that change who may do what: NOTICE. Permission changes
#: (``user_permission_elevation``), group membership, a login lockout removed, an OAuth app
#: activated for a user.
NOTICE_EVENTS = frozenset({
    "user_permission_elevation", "add_group_user", "add_group_group", "account_manually_unlocked",
    "activate_oauth_client_app_user",
})
#: Categories whose changes Google files as Admin Activity (ADMIN_WRITE) audit logs: NOTICE.
ADMIN_CATEGORIES = frozenset({"settings"})
#: Generic rule: a name that starts with one of these verbs is a change.
CHANGE_PREFIXES = ("create_", "update_", "delete_", "add_", "remove_", "set_", "enable_", "disable_",
                   "grant_", "revoke_")
#: Generic rule: a change to one of these objects changes who may do what: NOTICE. Written as
#: Logging-query regular expressions too (``terraform/modules/looker_audit_export/signals.tf``, role_changes).
ACCESS_OBJECTS = ("role", "permission", "model_set", "group")
#: Generic rule: a change to a user or its credentials (API keys, logins) is NOTICE too, but not part of the
#: role_changes signal: user accounts change too often for every change to open an incident.
ACCOUNT_OBJECTS = ("user", "credential")
CHANGE_REGEX = "^(" + "|".join(prefix.rstrip("_") for prefix in CHANGE_PREFIXES) + ")_"
ACCESS_OBJECT_REGEX = "|".join(ACCESS_OBJECTS)
_ACCESS_CHANGE = re.compile("|".join(ACCESS_OBJECTS + ACCOUNT_OBJECTS))


def is_failure(name: str) -> bool:
    """A documented failure, or a name ending in ``_failure``, ``_failed`` or ``_error``."""
    return name in WARNING_EVENTS or name.endswith(FAILURE_SUFFIXES)


def is_access_change(name: str, category: str) -> bool:
    """A change of who may do what: documented ones, Admin Activity settings, or a change to a role,
    permission, model set, group, user or credential (by its name)."""
    if name in NOTICE_EVENTS:
        return True
    if not name.startswith(CHANGE_PREFIXES):
        return False
    return category in ADMIN_CATEGORIES or _ACCESS_CHANGE.search(name) is not None
