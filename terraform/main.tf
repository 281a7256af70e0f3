# Looker System Activity -> Cloud Logging exporter: the configuration a
# first-time user applies (`terraform apply` here, with terraform.tfvars).
#
# Everything is in the reusable module modules/looker_audit_export/ (see its
# README.md); this root only configures the providers (versions.tf) and
# passes every variable through. variables.tf is a copy of the module's
# (tests/test_terraform.py checks that they are the same), so the same
# terraform.tfvars works here and in a direct call of the module.
#
# Deployed before the module existed? moved.tf carries every resource to its
# address in the module: the next plan moves them and destroys nothing.

module "looker_audit_export" {
  source = "./modules/looker_audit_export"

  project_id                     = var.project_id
  region                         = var.region
  name_prefix                    = var.name_prefix
  labels                         = var.labels
  looker_instances               = var.looker_instances
  looker_verify_ssl              = var.looker_verify_ssl
  looker_timeout_seconds         = var.looker_timeout_seconds
  page_size                      = var.page_size
  schedule                       = var.schedule
  log_name                       = var.log_name
  export_streams                 = var.export_streams
  history_log_name               = var.history_log_name
  history_include_own_queries    = var.history_include_own_queries
  initial_lookback_minutes       = var.initial_lookback_minutes
  settle_seconds                 = var.settle_seconds
  run_budget_seconds             = var.run_budget_seconds
  max_message_age_seconds        = var.max_message_age_seconds
  python_runtime                 = var.python_runtime
  vpc_egress                     = var.vpc_egress
  source_archive_path            = var.source_archive_path
  function_memory                = var.function_memory
  iam_propagation_seconds        = var.iam_propagation_seconds
  metric_propagation_seconds     = var.metric_propagation_seconds
  enable_long_retention          = var.enable_long_retention
  retention_days                 = var.retention_days
  log_bucket_location            = var.log_bucket_location
  lock_log_bucket                = var.lock_log_bucket
  enable_bigquery_linked_dataset = var.enable_bigquery_linked_dataset
  alerts                         = var.alerts
  notification_channels          = var.notification_channels
  alert_window_seconds           = var.alert_window_seconds
  login_failure_threshold        = var.login_failure_threshold
  large_export_row_count         = var.large_export_row_count
  download_threshold             = var.download_threshold
  exporter_max_lag_seconds       = var.exporter_max_lag_seconds
  exporter_failed_runs_threshold = var.exporter_failed_runs_threshold
  enable_dashboard               = var.enable_dashboard
}
