# A Logging-query regular expression that matches a whole number >=
# var.large_export_row_count, written as text.
#
# Looker gives event attributes as strings ("row_count": "250000"), and a
# comparison such as `row_count >= 100000` on a string field is not a
# numeric one we can rely on (as text, "9" > "100000"). The regex below
# compares numerically, digit by digit: for N = 109 it is
#   ^ *0*([1-9][0-9]{3,}|109|[2-9][0-9]{2}|1[1-9][0-9]{1})([.][0-9]*)? *$
# (more digits than N; N itself; same width with a larger digit after a
# common prefix). It has no backslash, so it needs no escaping in a query.
#
# The security signals and the exporters' log filter are here too (used by
# alerts.tf). This file only holds locals, so the tests can evaluate it with
# `terraform console` (and variables.tf, instances.tf) without downloading
# any provider.

locals {
  row_count_digits = split("", tostring(var.large_export_row_count))
  row_count_width  = length(local.row_count_digits)

  row_count_alternatives = concat(
    ["[1-9][0-9]{${local.row_count_width},}", tostring(var.large_export_row_count)],
    [
      for i, digit in local.row_count_digits :
      "${join("", slice(local.row_count_digits, 0, i))}[${tonumber(digit) + 1}-9][0-9]{${local.row_count_width - i - 1}}"
      if tonumber(digit) < 9
    ],
  )

  row_count_at_least_regex = "^ *0*(${join("|", local.row_count_alternatives)})([.][0-9]*)? *$"
}

locals {
  metric_prefix = "logging.googleapis.com/user"

  # The query history log (export_streams must include "history" for it to have entries).
  history_log_filter = "logName=\"projects/${var.project_id}/logs/${var.history_log_name}\""

  # Each signal is built on events (or query history sources) that Looker documents: the names,
  # categories and sources below come from looker_audit_export/catalogue.py, which cites the Looker page of
  # each, and tests/test_catalogue.py checks every filter against it. `stream` is the log a signal counts
  # ("events" or "history"); `experimental` signals match no documented event and are off by default.
  security_signals = {
    login_failure_burst = {
      metric       = "${var.name_prefix}/login_failures"
      title        = "burst of Looker login failures"
      description  = "Looker login failures (login_failure, category authentication), by Looker host."
      filter       = "${local.events_log_filter} AND labels.event_name=~\"login_failure$\""
      threshold    = var.login_failure_threshold
      stream       = "events"
      experimental = false
    }
    role_changes = {
      metric       = "${var.name_prefix}/role_changes"
      title        = "Looker permission, role or group change"
      description  = "Looker permission changes (user_permission_elevation), group membership changes (add_group_user, add_group_group), and any create/update/delete/add/remove/set/enable/disable/grant/revoke event on roles, permissions, model sets or groups, by Looker host."
      filter       = "${local.events_log_filter} AND (labels.event_name=(\"user_permission_elevation\" OR \"add_group_user\" OR \"add_group_group\") OR (labels.event_name=~\"^(create|update|delete|add|remove|set|enable|disable|grant|revoke)_\" AND labels.event_name=~\"role|permission|model_set|group\"))"
      threshold    = 0
      stream       = "events"
      experimental = false
    }
    sudo_sessions = {
      metric       = "${var.name_prefix}/sudo_events"
      title        = "Looker action under sudo"
      description  = "Events done by a Looker admin acting as another user (event.sudo_user_id set), by Looker host. Looker documents no event that starts a sudo session."
      filter       = "${local.events_log_filter} AND protoPayload.authenticationInfo.serviceAccountDelegationInfo:*"
      threshold    = 0
      stream       = "events"
      experimental = false
    }
    api_credentials = {
      metric       = "${var.name_prefix}/api_credentials_created"
      title        = "Looker OAuth app activated for a user"
      description  = "A user activated on a Looker OAuth client app (activate_oauth_client_app_user), by Looker host. Looker documents no event for new API3 keys."
      filter       = "${local.events_log_filter} AND labels.event_name=\"activate_oauth_client_app_user\""
      threshold    = 0
      stream       = "events"
      experimental = false
    }
    large_exports = {
      metric       = "${var.name_prefix}/large_exports"
      title        = "large Looker data export (experimental)"
      description  = "EXPERIMENTAL, off by default: export_query and download events with row_count >= ${var.large_export_row_count}, by Looker host. Looker documents neither these events nor a row count on any event."
      filter       = "${local.events_log_filter} AND (labels.event_name=\"export_query\" OR labels.event_name=~\"^download\") AND protoPayload.response.attributes.row_count=~\"${local.row_count_at_least_regex}\""
      threshold    = 0
      stream       = "events"
      experimental = true
    }
    downloads = {
      metric       = "${var.name_prefix}/downloads"
      title        = "many Looker downloads"
      description  = "Looker downloads in the query history: dashboards as CSV (history.source data-download-api), Looks and dashboards as PDF or PNG (render_manager_cache), results streamed through the Action Hub (authenticated_download), by Looker host. Needs export_streams to include history."
      filter       = "${local.history_log_filter} AND labels.query_source=(\"data_download_api\" OR \"render_manager_cache\" OR \"authenticated_download\")"
      threshold    = var.download_threshold
      stream       = "history"
      experimental = false
    }
  }

  # A switch left unset (null) means: on when the signal's stream is exported and it is not experimental.
  enabled_security_signals = {
    for k, s in local.security_signals : k => s
    if(var.alerts[k] == null ? contains(var.export_streams, s.stream) && !s.experimental : var.alerts[k])
  }

  # The exporters' own log lines.
  function_log_filter = join(" AND ", [
    "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Fstdout\"",
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for i in values(local.instances) : "\"${i.function_name}\""])})",
  ])

  # Exporter runs by outcome, counted from their summary lines; each is kept while the alert that reads it
  # is on (failed runs raise exporter_failures, the absence of successful ones exporter_no_success) or the
  # dashboard shows it.
  run_counters = {
    failed = {
      metric      = "${var.name_prefix}/exporter_failed_runs"
      alert       = "exporter_failures"
      title       = "Looker export failed runs"
      description = "Failed Looker export runs (\"Looker export failed\" at ERROR), by function."
      filter      = "${local.function_log_filter} AND severity>=ERROR AND jsonPayload.message=~\"^Looker export failed\""
    }
    successful = {
      metric      = "${var.name_prefix}/exporter_successful_runs"
      alert       = "exporter_no_success"
      title       = "Looker export successful runs"
      description = "Successful Looker export runs (\"Looker export finished\" at INFO), by function."
      filter      = "${local.function_log_filter} AND severity=INFO AND jsonPayload.message=~\"^Looker export finished\""
    }
  }

  enabled_run_counters = { for k, c in local.run_counters : k => c if var.alerts[c.alert] || var.enable_dashboard }
}
