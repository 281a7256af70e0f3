# Exporter health metrics read from the run summary line, and how each
# security signal alerts. Locals only (evaluated by the tests with
# `terraform console`, like signals.tf).

locals {
  # Numbers of each run's summary line (jsonPayload.summary.<field>, logged by
  # looker_audit_export/function.py on the "Looker export finished" and the
  # "Looker export failed" line alike), as log-based distribution metrics by
  # function. A metric is kept while an alert in `alerts` reads it, or the
  # dashboard shows it.
  summary_values = {
    lag = {
      metric      = "${var.name_prefix}/exporter_lag"
      field       = "lag_seconds"
      unit        = "s"
      title       = "Looker export lag"
      description = "Looker export lag in seconds (jsonPayload.summary.lag_seconds of each run's summary line), by function."
      alerts      = ["exporter_lag"]
    }
    events_written = {
      metric      = "${var.name_prefix}/exporter_events_written"
      field       = "events_written"
      unit        = "1"
      title       = "Looker export events written per run"
      description = "Log entries written by each Looker export run (jsonPayload.summary.events_written), by function."
      alerts      = []
    }
    query_calls = {
      metric      = "${var.name_prefix}/exporter_query_calls"
      field       = "query_calls"
      unit        = "1"
      title       = "Looker API query calls per run"
      description = "Looker API query calls of each Looker export run (jsonPayload.summary.query_calls), by function: what counts against the Looker edition's query budget."
      alerts      = []
    }
  }

  enabled_summary_values = {
    for k, v in local.summary_values : k => v
    if var.enable_dashboard || anytrue([for a in v.alerts : var.alerts[a]])
  }

  # How each security signal alerts.
  #
  #   log_match - a log-match alert policy (condition_matched_log): one
  #               incident for a single matching entry, read from the log
  #               itself, so it needs no metric and works from the first
  #               apply. For signals where ONE event is worth a look.
  #   threshold - a metric threshold over alert_window_seconds: counts, so it
  #               needs its log-based metric, and the policy waits for the
  #               metric to reach Cloud Monitoring (time_sleep in alerts.tf,
  #               https://github.com/hashicorp/terraform-provider-google/issues/11102).
  #               For signals where single events are routine and only a
  #               burst is suspicious.
  #
  # The metrics of every enabled signal exist either way (the dashboard shows
  # them). A signal not listed here (a new one in signals.tf) is log_match when
  # its threshold is 0 (any single event), else threshold.
  signal_alerting = {
    login_failure_burst = "threshold" # one mistyped password is normal; many within the window are not
    role_changes        = "log_match" # every role / permission / group change is worth a look on its own
    sudo_sessions       = "log_match" # so is every sudo session (an admin acting as another user)
    api_credentials     = "log_match" # and every OAuth client app activated for a user
    large_exports       = "log_match" # the row count is in the filter: each match is already the finding
    downloads           = "threshold" # downloads are routine; a burst of them is the signal
  }

  signal_alert_kind = {
    for k, s in local.enabled_security_signals :
    k => lookup(local.signal_alerting, k, s.threshold == 0 ? "log_match" : "threshold")
  }
  threshold_signals = { for k, s in local.enabled_security_signals : k => s if local.signal_alert_kind[k] == "threshold" }
  log_match_signals = { for k, s in local.enabled_security_signals : k => s if local.signal_alert_kind[k] == "log_match" }

  # Every log-based metric this configuration creates, by type
  # (logging.googleapis.com/user/NAME): what the dashboard may show, and what
  # the alert policies wait for.
  metric_types = concat(
    [for s in values(local.enabled_security_signals) : "${local.metric_prefix}/${s.metric}"],
    [for c in values(local.enabled_run_counters) : "${local.metric_prefix}/${c.metric}"],
    [for v in values(local.enabled_summary_values) : "${local.metric_prefix}/${v.metric}"],
  )
}
