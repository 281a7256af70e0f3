# An existing deployment (applied before the resources moved into
# modules/looker_audit_export/) upgrades in place: each resource of the
# previous layout is carried to its address in the module, so the next plan
# shows "has moved to" lines and destroys nothing (not the cursor bucket, the
# log bucket or the secrets). A whole resource moves with all its instances
# (for_each keys, count indexes). tests/test_terraform.py checks that every
# resource of the module that existed before has its block here.

moved {
  from = google_logging_metric.exporter_runs
  to   = module.looker_audit_export.google_logging_metric.exporter_runs
}

moved {
  from = google_logging_metric.exporter_values
  to   = module.looker_audit_export.google_logging_metric.exporter_values
}

moved {
  from = google_logging_metric.security
  to   = module.looker_audit_export.google_logging_metric.security
}

moved {
  from = google_monitoring_alert_policy.exporter_failures
  to   = module.looker_audit_export.google_monitoring_alert_policy.exporter_failures
}

moved {
  from = google_monitoring_alert_policy.exporter_lag
  to   = module.looker_audit_export.google_monitoring_alert_policy.exporter_lag
}

moved {
  from = google_monitoring_alert_policy.exporter_no_success
  to   = module.looker_audit_export.google_monitoring_alert_policy.exporter_no_success
}

moved {
  from = google_monitoring_alert_policy.security
  to   = module.looker_audit_export.google_monitoring_alert_policy.security
}

moved {
  from = google_monitoring_alert_policy.security_log_match
  to   = module.looker_audit_export.google_monitoring_alert_policy.security_log_match
}

moved {
  from = time_sleep.metrics
  to   = module.looker_audit_export.time_sleep.metrics
}

moved {
  from = google_monitoring_dashboard.this
  to   = module.looker_audit_export.google_monitoring_dashboard.this
}

moved {
  from = google_cloud_scheduler_job.tick
  to   = module.looker_audit_export.google_cloud_scheduler_job.tick
}

moved {
  from = google_cloudfunctions2_function.exporter
  to   = module.looker_audit_export.google_cloudfunctions2_function.exporter
}

moved {
  from = google_pubsub_topic.ticks
  to   = module.looker_audit_export.google_pubsub_topic.ticks
}

moved {
  from = google_artifact_registry_repository_iam_member.build_writer
  to   = module.looker_audit_export.google_artifact_registry_repository_iam_member.build_writer
}

moved {
  from = google_cloud_run_v2_service_iam_member.trigger_invoker
  to   = module.looker_audit_export.google_cloud_run_v2_service_iam_member.trigger_invoker
}

moved {
  from = google_project_iam_member.build_log_writer
  to   = module.looker_audit_export.google_project_iam_member.build_log_writer
}

moved {
  from = google_project_iam_member.build_staging_viewer
  to   = module.looker_audit_export.google_project_iam_member.build_staging_viewer
}

moved {
  from = google_project_iam_member.runtime_log_writer
  to   = module.looker_audit_export.google_project_iam_member.runtime_log_writer
}

moved {
  from = google_project_iam_member.service_agents
  to   = module.looker_audit_export.google_project_iam_member.service_agents
}

moved {
  from = google_project_service_identity.agents
  to   = module.looker_audit_export.google_project_service_identity.agents
}

moved {
  from = google_secret_manager_secret_iam_member.runtime_secret_accessor
  to   = module.looker_audit_export.google_secret_manager_secret_iam_member.runtime_secret_accessor
}

moved {
  from = google_service_account.build
  to   = module.looker_audit_export.google_service_account.build
}

moved {
  from = google_service_account.runtime
  to   = module.looker_audit_export.google_service_account.runtime
}

moved {
  from = google_service_account.trigger
  to   = module.looker_audit_export.google_service_account.trigger
}

moved {
  from = google_service_account_iam_member.pubsub_agent_token_creator
  to   = module.looker_audit_export.google_service_account_iam_member.pubsub_agent_token_creator
}

moved {
  from = google_storage_bucket_iam_member.build_source_viewer
  to   = module.looker_audit_export.google_storage_bucket_iam_member.build_source_viewer
}

moved {
  from = google_storage_bucket_iam_member.runtime_state_object_user
  to   = module.looker_audit_export.google_storage_bucket_iam_member.runtime_state_object_user
}

moved {
  from = time_sleep.iam_propagation
  to   = module.looker_audit_export.time_sleep.iam_propagation
}

moved {
  from = google_project_service.apis
  to   = module.looker_audit_export.google_project_service.apis
}

moved {
  from = google_logging_linked_dataset.audit
  to   = module.looker_audit_export.google_logging_linked_dataset.audit
}

moved {
  from = google_logging_project_bucket_config.audit
  to   = module.looker_audit_export.google_logging_project_bucket_config.audit
}

moved {
  from = google_logging_project_exclusion.audit_not_in_default
  to   = module.looker_audit_export.google_logging_project_exclusion.audit_not_in_default
}

moved {
  from = google_logging_project_sink.audit
  to   = module.looker_audit_export.google_logging_project_sink.audit
}

moved {
  from = google_secret_manager_secret.looker_credentials
  to   = module.looker_audit_export.google_secret_manager_secret.looker_credentials
}

moved {
  from = google_artifact_registry_repository.functions
  to   = module.looker_audit_export.google_artifact_registry_repository.functions
}

moved {
  from = google_storage_bucket.source
  to   = module.looker_audit_export.google_storage_bucket.source
}

moved {
  from = google_storage_bucket_object.source
  to   = module.looker_audit_export.google_storage_bucket_object.source
}

moved {
  from = google_storage_bucket.state
  to   = module.looker_audit_export.google_storage_bucket.state
}

# Older still: these metrics were resources of their own (with count) before
# the module existed. The module's own moved blocks (alerts.tf) carry them on
# to their current addresses, so a deployment of that layout upgrades too.

moved {
  from = google_logging_metric.exporter_lag
  to   = module.looker_audit_export.google_logging_metric.exporter_lag
}

moved {
  from = google_logging_metric.exporter_failures
  to   = module.looker_audit_export.google_logging_metric.exporter_failures
}
