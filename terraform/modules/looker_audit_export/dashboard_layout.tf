# The dashboard's layout (dashboard.tf creates it when var.enable_dashboard).
# Locals only, so the tests and scripts/draw_dashboard.py can evaluate it with
# `terraform console` without any provider.
#
# Every chart reads a log-based metric this configuration creates
# (local.metric_types, health.tf), by its type; tests/test_terraform.py checks
# that. The security tiles are built from local.enabled_security_signals, so a
# signal added, renamed or switched off in signals.tf / var.alerts changes the
# dashboard with it.
#
# Dashboard JSON: https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards
# PromQL over Cloud Monitoring metrics (UTF-8 metric names in quotes; a
# distribution's sum is the name + "_sum"): https://cloud.google.com/monitoring/promql

locals {
  dashboard_columns     = 48
  dashboard_tile_width  = 24
  dashboard_tile_height = 16
  dashboard_header      = 4

  # Filters of the health charts: per function (one per Looker instance).
  health_metric_filter = { for k, v in merge(local.run_counters, local.summary_values) : k => "metric.type=\"${local.metric_prefix}/${v.metric}\" resource.type=\"cloud_run_revision\"" }

  # PromQL: the Looker query calls of the runs in the trailing window, summed
  # from the query_calls distribution.
  query_calls_sum = "{\"${local.metric_prefix}/${local.summary_values.query_calls.metric}_sum\", monitored_resource=\"cloud_run_revision\"}"

  # The charts of one log-based metric each, one spec a chart: its title, plot
  # type, the metric's filter and how its series are aggregated (Cloud Monitoring
  # API names), the y axis label and, if an alert watches the metric, the
  # alert's threshold. The health charts plot per function, the security charts
  # (one per enabled signal) per Looker host.
  dashboard_metric_chart_specs = {
    health = [
      {
        title       = "Successful runs per hour, by function"
        plot        = "STACKED_BAR"
        filter      = local.health_metric_filter.successful
        aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.function"] }
        y_axis      = "runs"
      },
      {
        title       = "Failed runs per hour, by function"
        plot        = "STACKED_BAR"
        filter      = local.health_metric_filter.failed
        aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.function"] }
        y_axis      = "runs"
        threshold   = { value = var.exporter_failed_runs_threshold, label = "exporter_failures alert" }
      },
      {
        title       = "Events written per run (mean per hour), by function"
        plot        = "LINE"
        filter      = local.health_metric_filter.events_written
        aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_MEAN", crossSeriesReducer = "REDUCE_MEAN", groupByFields = ["metric.label.function"] }
        y_axis      = "events per run"
      },
      {
        title       = "Lag (summary.lag_seconds), by function"
        plot        = "LINE"
        filter      = local.health_metric_filter.lag
        aggregation = { alignmentPeriod = "600s", perSeriesAligner = "ALIGN_MEAN", crossSeriesReducer = "REDUCE_MAX", groupByFields = ["metric.label.function"] }
        y_axis      = "seconds"
        threshold   = { value = var.exporter_max_lag_seconds, label = "exporter_lag alert" }
      },
    ]
    security = [
      for k, s in local.enabled_security_signals : {
        title       = "${k}: ${s.title}, per hour by Looker host"
        plot        = "STACKED_BAR"
        filter      = "metric.type=\"${local.metric_prefix}/${s.metric}\""
        aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.looker_host"] }
        y_axis      = "events"
      }
    ]
  }

  # The widgets of those charts, by section; a threshold is drawn only on a
  # chart whose spec has one.
  dashboard_metric_charts = {
    for section, specs in local.dashboard_metric_chart_specs : section => [
      for s in specs : {
        title = s.title
        xyChart = merge(
          {
            dataSets = [{
              plotType        = s.plot
              targetAxis      = "Y1"
              timeSeriesQuery = { timeSeriesFilter = { filter = s.filter, aggregation = s.aggregation } }
            }]
            yAxis = { label = s.y_axis, scale = "LINEAR" }
          },
          lookup(s, "threshold", null) == null ? {} : { thresholds = [merge(s.threshold, { targetAxis = "Y1" })] },
        )
      }
    ]
  }

  # The health section: its metric charts, then the Looker query calls (PromQL).
  dashboard_health_charts = concat(local.dashboard_metric_charts.health, [
    {
      title = "Looker query calls, trailing 24 h, by function"
      xyChart = {
        dataSets = [{
          plotType        = "LINE"
          targetAxis      = "Y1"
          timeSeriesQuery = { prometheusQuery = "sum by (function) (increase(${local.query_calls_sum}[1d]))", unitOverride = "1" }
        }]
        yAxis = { label = "query calls per day", scale = "LINEAR" }
      }
    },
    {
      title = "Looker query calls, trailing 30 days, all functions (set against the edition's monthly budget)"
      scorecard = {
        timeSeriesQuery = { prometheusQuery = "sum(increase(${local.query_calls_sum}[30d]))", unitOverride = "1" }
      }
    },
  ])
  dashboard_security_charts = local.dashboard_metric_charts.security

  # Two charts a row under each section's header.
  dashboard_health_rows   = ceil(length(local.dashboard_health_charts) / 2)
  dashboard_security_top  = local.dashboard_header + local.dashboard_health_rows * local.dashboard_tile_height
  dashboard_security_text = length(local.enabled_security_signals) > 0 ? "Events of the exported log that match each enabled signal (signals.tf), per hour and Looker host. Alerts: see the alert_policies output." : "No security signal is enabled (var.alerts)."

  dashboard = {
    displayName = "Looker audit export (${var.name_prefix})"
    mosaicLayout = {
      columns = local.dashboard_columns
      tiles = concat(
        [{
          xPos = 0, yPos = 0, width = local.dashboard_columns, height = local.dashboard_header
          widget = {
            title = "Exporter health"
            text  = { format = "MARKDOWN", content = "One summary line per run of each function (one function per Looker instance): outcome, events written, lag and Looker query calls." }
          }
        }],
        [
          for i, chart in local.dashboard_health_charts : {
            xPos   = (i % 2) * local.dashboard_tile_width
            yPos   = local.dashboard_header + floor(i / 2) * local.dashboard_tile_height
            width  = local.dashboard_tile_width
            height = local.dashboard_tile_height
            widget = chart
          }
        ],
        [{
          xPos = 0, yPos = local.dashboard_security_top, width = local.dashboard_columns, height = local.dashboard_header
          widget = {
            title = "Security signals"
            text  = { format = "MARKDOWN", content = local.dashboard_security_text }
          }
        }],
        [
          for i, chart in local.dashboard_security_charts : {
            xPos   = (i % 2) * local.dashboard_tile_width
            yPos   = local.dashboard_security_top + local.dashboard_header + floor(i / 2) * local.dashboard_tile_height
            width  = local.dashboard_tile_width
            height = local.dashboard_tile_height
            widget = chart
          }
        ],
      )
    }
  }
}
