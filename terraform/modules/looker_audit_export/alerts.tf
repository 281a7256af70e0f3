# Security signals and exporter health: log-based metrics and alert policies,
# each switchable in var.alerts; every policy notifies var.notification_channels.
#
# Security signals count entries of the exported log (all instances; label
# looker_host). With long retention on they are bucket-scoped metrics on the
# dedicated bucket, so they never depend on what _Default still stores.
#
# Exporter health counts the functions' own summary lines: Cloud Run functions
# write stdout JSON lines to run.googleapis.com/stdout under the
# cloud_run_revision resource, service_name = the function name (label
# `function`). Every run logs one line: "Looker export finished: ..." at INFO
# or "Looker export failed: ..." at ERROR, with jsonPayload.summary.
#
# One apply: an alert policy on a log-based metric created in the same apply
# fails with 404 "Cannot find metric(s) that match type ..." for up to 10
# minutes, and the provider does not retry
# (https://github.com/hashicorp/terraform-provider-google/issues/11102).
# Security signals where one event is the finding use log-match policies,
# which read the log and need no metric (local.signal_alerting, health.tf);
# every policy that does read a metric waits for time_sleep.metrics below.
#
# Timing: an event reaches Cloud Logging up to one schedule interval plus
# settle_seconds after it happened, with its own time as the entry's
# timestamp, so security windows (alert_window_seconds) must be wider than
# that. Entries written more than 24 h after their time (a long backfill)
# are not counted by log-based metrics at all.

# --- security signals -----------------------------------------------------------

resource "google_logging_metric" "security" {
  for_each = local.enabled_security_signals

  project     = var.project_id
  name        = each.value.metric
  description = each.value.description
  filter      = each.value.filter
  # Bucket-scoped when the entries go to the dedicated bucket (retention.tf).
  bucket_name = local.retention ? google_logging_project_bucket_config.audit[0].id : null

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Looker: ${each.value.title}"

    labels {
      key         = "looker_host"
      value_type  = "STRING"
      description = "Looker host (labels.looker_host)."
    }
    labels {
      key         = "event_name"
      value_type  = "STRING"
      description = "Looker event name (labels.event_name)."
    }
  }

  label_extractors = {
    looker_host = "EXTRACT(labels.looker_host)"
    event_name  = "EXTRACT(labels.event_name)"
  }

  lifecycle {
    # A signal switched on whose log is not exported would never fire (downloads counts query history).
    precondition {
      condition     = contains(var.export_streams, each.value.stream)
      error_message = "The security signal ${each.key} counts the ${each.value.stream} stream: add \"${each.value.stream}\" to export_streams, or set alerts = { ${each.key} = false }."
    }
  }

  depends_on = [google_project_service.apis]
}

# Threshold signals (local.threshold_signals): more than `threshold` events of
# one Looker host in one alert window.
resource "google_monitoring_alert_policy" "security" {
  for_each = local.threshold_signals

  project               = var.project_id
  display_name          = "Looker: ${each.value.title}"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "More than ${each.value.threshold} in ${var.alert_window_seconds / 60} min"

    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${google_logging_metric.security[each.key].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.alert_window_seconds}s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.looker_host"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ${each.value.description}

      More than ${each.value.threshold} such events of one Looker host within ${var.alert_window_seconds / 60} minutes.
      The events reach Cloud Logging up to one export interval after they happened.

      Logs Explorer query:

          ${each.value.filter}
    EOT
  }

  depends_on = [google_project_service.apis, time_sleep.metrics]
}

# Log-match signals (local.log_match_signals): every matching entry of the
# exported log opens an incident (labelled with its Looker host and event
# name), at most one notification per 5 minutes per policy. Log-based alerting
# policies skip entries that are excluded from every log bucket, but do scan
# entries a project sink routes to a log bucket, so with long retention on
# they see the entries in the dedicated bucket
# (https://cloud.google.com/logging/docs/alerting/log-based-alerts).
resource "google_monitoring_alert_policy" "security_log_match" {
  for_each = local.log_match_signals

  project               = var.project_id
  display_name          = "Looker: ${each.value.title}"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "Any matching event"

    condition_matched_log {
      filter = each.value.filter
      label_extractors = {
        looker_host = "EXTRACT(labels.looker_host)"
        event_name  = "EXTRACT(labels.event_name)"
      }
    }
  }

  alert_strategy {
    # Required for a log-match condition (AlertStrategy.notification_rate_limit).
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ${each.value.description}

      Any single such event raises this alert. The events reach Cloud Logging up to one export interval after
      they happened.

      Logs Explorer query:

          ${each.value.filter}
    EOT
  }

  depends_on = [google_project_service.apis]
}

# --- exporter health ----------------------------------------------------------------

# Numbers of each run's summary line (local.summary_values in health.tf): the
# lag (summary.lag_seconds: the age of the newest exported event while it
# catches up; 0 when caught up), events written and Looker query calls.
resource "google_logging_metric" "exporter_values" {
  for_each = local.enabled_summary_values

  project     = var.project_id
  name        = each.value.metric
  description = each.value.description
  filter      = "${local.function_log_filter} AND jsonPayload.summary.${each.value.field}>=0"

  value_extractor = "EXTRACT(jsonPayload.summary.${each.value.field})"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = each.value.unit
    display_name = each.value.title

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Function (Cloud Run service) name: one per Looker instance."
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }

  # 1 to about 700,000 (seconds: about 8 days).
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.4
      scale              = 1
    }
  }

  depends_on = [google_project_service.apis]
}

# The lag metric was a resource of its own (with count) before: keep its state.
moved {
  from = google_logging_metric.exporter_lag[0]
  to   = google_logging_metric.exporter_values["lag"]
}

resource "google_monitoring_alert_policy" "exporter_lag" {
  count = var.alerts.exporter_lag ? 1 : 0

  project               = var.project_id
  display_name          = "Looker export: falling behind"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "Lag over ${var.exporter_max_lag_seconds} s"

    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${google_logging_metric.exporter_values["lag"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.exporter_max_lag_seconds
      duration        = "0s"

      aggregations {
        # Two ticks of the default schedule; one run is one sample, so the
        # mean of a window is the lag those runs reported.
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_MEAN"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["metric.label.function"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A Looker exporter reports a lag of more than ${var.exporter_max_lag_seconds} seconds: it is catching up
      (after an outage, or a first run with a long initial_lookback_minutes) or cannot keep up with the schedule.
      Read its summary lines:

          ${local.function_log_filter} AND jsonPayload.summary:*
    EOT
  }

  depends_on = [google_project_service.apis, time_sleep.metrics]
}

# Exporter runs by outcome (local.run_counters in signals.tf): failed and successful.
resource "google_logging_metric" "exporter_runs" {
  for_each = local.enabled_run_counters

  project     = var.project_id
  name        = each.value.metric
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = each.value.title

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Function (Cloud Run service) name: one per Looker instance."
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.apis]
}

# Each run metric was a resource of its own (with count) before: keep their state.
moved {
  from = google_logging_metric.exporter_failures[0]
  to   = google_logging_metric.exporter_runs["failed"]
}

moved {
  from = google_logging_metric.exporter_runs[0]
  to   = google_logging_metric.exporter_runs["successful"]
}

resource "google_monitoring_alert_policy" "exporter_failures" {
  count = var.alerts.exporter_failures ? 1 : 0

  project               = var.project_id
  display_name          = "Looker export: failed runs"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "More than ${var.exporter_failed_runs_threshold} failed runs in 1 h"

    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${google_logging_metric.exporter_runs["failed"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.exporter_failed_runs_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A Looker exporter failed more than ${var.exporter_failed_runs_threshold} runs within an hour. Failed runs are
      retried and resume from the cursor, so nothing is lost yet; summary.error says why:

          ${local.function_log_filter} AND severity>=ERROR
    EOT
  }

  depends_on = [google_project_service.apis, time_sleep.metrics]
}

resource "google_monitoring_alert_policy" "exporter_no_success" {
  count = var.alerts.exporter_no_success ? 1 : 0

  project               = var.project_id
  display_name          = "Looker export: no successful run"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "No successful run for ${var.exporter_max_lag_seconds} s"

    condition_absent {
      filter   = "metric.type=\"${local.metric_prefix}/${google_logging_metric.exporter_runs["successful"].name}\" AND resource.type=\"cloud_run_revision\""
      duration = "${var.exporter_max_lag_seconds}s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A Looker exporter has had no successful run for ${var.exporter_max_lag_seconds} seconds: its scheduler job is
      paused or failing, its function fails every run, or it cannot start. Its log:

          ${local.function_log_filter}
    EOT
  }

  depends_on = [google_project_service.apis, time_sleep.metrics]
}

# Wait until Cloud Monitoring knows the new log-based metrics before creating
# the policies that read them (issue #11102 above; the error itself says "up
# to 10 minutes"). Runs on the first apply, in parallel with the function
# builds, and again only when the set of metrics changes (a signal switched
# on), so that a policy on a new metric waits too.
resource "time_sleep" "metrics" {
  create_duration = "${var.metric_propagation_seconds}s"

  triggers = {
    metrics = join(",", sort(local.metric_types))
  }

  depends_on = [
    google_logging_metric.security,
    google_logging_metric.exporter_runs,
    google_logging_metric.exporter_values,
  ]
}
