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

  security_signals = {
    login_failure_burst = {
      metric      = "${var.name_prefix}/login_failures"
      title       = "burst of Looker login failures"
      description = "Looker login failures (login_failure, api_login_failure, saml_login_failure, ...), by Looker host."
      filter      = "${local.events_log_filter} AND labels.event_name=~\"login_failure$\""
      threshold   = var.login_failure_threshold
    }
    role_changes = {
      metric      = "${var.name_prefix}/role_changes"
      title       = "Looker role or permission change"
      description = "Looker role, permission set, model set and group changes (create/update/delete/add/remove/set/grant/revoke), by Looker host."
      filter      = "${local.events_log_filter} AND labels.event_name=~\"^(create|update|delete|add|remove|set|grant|revoke)_\" AND (labels.event_category=(\"role\" OR \"permission_set\" OR \"model_set\" OR \"group\") OR labels.event_name=~\"role|permission|model_set|group\")"
      threshold   = 0
    }
    sudo_sessions = {
      metric      = "${var.name_prefix}/sudo_events"
      title       = "Looker sudo session"
      description = "Events of Looker sudo sessions (an admin acting as another user): sudo events and every event done under sudo, by Looker host."
      filter      = "${local.events_log_filter} AND (labels.event_category=\"sudo\" OR labels.event_name=~\"^sudo\" OR protoPayload.authenticationInfo.serviceAccountDelegationInfo:*)"
      threshold   = 0
    }
    api_credentials = {
      metric      = "${var.name_prefix}/api_credentials_created"
      title       = "new Looker API credentials"
      description = "New Looker API credentials (API3 keys, OAuth client apps), by Looker host."
      filter      = "${local.events_log_filter} AND labels.event_name=~\"^(create|add|generate)_\" AND (labels.event_category=~\"api3|oauth_client\" OR labels.event_name=~\"api3|api_key|credentials_api|oauth_client\")"
      threshold   = 0
    }
    large_exports = {
      metric      = "${var.name_prefix}/large_exports"
      title       = "large Looker data export"
      description = "export_query and download events with row_count >= ${var.large_export_row_count}, by Looker host."
      filter      = "${local.events_log_filter} AND (labels.event_name=\"export_query\" OR labels.event_name=~\"^download\") AND protoPayload.response.attributes.row_count=~\"${local.row_count_at_least_regex}\""
      threshold   = 0
    }
    downloads = {
      metric      = "${var.name_prefix}/downloads"
      title       = "many Looker downloads"
      description = "Looker download events (download_dashboard, ...), by Looker host."
      filter      = "${local.events_log_filter} AND labels.event_name=~\"^download\""
      threshold   = var.download_threshold
    }
  }

  enabled_security_signals = { for k, s in local.security_signals : k => s if var.alerts[k] }

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
