# A Cloud Monitoring dashboard per stack (var.enable_dashboard, on by default):
# exporter health and the enabled security signals. Its layout is
# local.dashboard (dashboard_layout.tf); docs/dashboard.png is drawn from it
# by scripts/draw_dashboard.py.

resource "google_monitoring_dashboard" "this" {
  count = var.enable_dashboard ? 1 : 0

  project        = var.project_id
  dashboard_json = jsonencode(local.dashboard)

  # Its charts read this stack's log-based metrics: create it once Cloud
  # Monitoring knows them.
  depends_on = [google_project_service.apis, time_sleep.metrics]
}
