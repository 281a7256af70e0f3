# Per-instance outputs are maps keyed like var.looker_instances.

output "function_names" {
  description = "Name of each instance's 2nd gen Cloud Function."
  value       = { for k, fn in google_cloudfunctions2_function.exporter : k => fn.name }
}

output "function_uris" {
  description = "URI of each function's Cloud Run service (internal ingress only: not callable from the internet)."
  value       = { for k, fn in google_cloudfunctions2_function.exporter : k => fn.service_config[0].uri }
}

output "topics" {
  description = "Pub/Sub topic that triggers each instance's export run (full resource ID)."
  value       = { for k, t in google_pubsub_topic.ticks : k => t.id }
}

output "scheduler_jobs" {
  description = "Cloud Scheduler job of each instance."
  value       = { for k, j in google_cloud_scheduler_job.tick : k => j.name }
}

output "runtime_service_accounts" {
  description = "Email of the service account each instance's function runs as."
  value       = { for k, sa in google_service_account.runtime : k => sa.email }
}

output "trigger_service_account" {
  description = "Email of the service account Eventarc uses to invoke the functions."
  value       = google_service_account.trigger.email
}

output "build_service_account" {
  description = "Email of the service account Cloud Build uses to build the functions."
  value       = google_service_account.build.email
}

output "secret_ids" {
  description = "Secret Manager secret that must hold each instance's Looker API credentials (projects/PROJECT/secrets/NAME)."
  value       = { for k, s in google_secret_manager_secret.looker_credentials : k => s.id }
}

output "secret_add_version_commands" {
  description = "Run each once after the first apply (and again to rotate), with that instance's Looker API client ID and secret: stores the credentials without passing them through Terraform."
  value = {
    for k, s in google_secret_manager_secret.looker_credentials :
    k => "printf '%s' '{\"client_id\":\"YOUR_CLIENT_ID\",\"client_secret\":\"YOUR_CLIENT_SECRET\"}' | gcloud secrets versions add ${s.secret_id} --project=${var.project_id} --data-file=-"
  }
}

output "state_uris" {
  description = "Where each instance's export cursor is kept (STATE_URI)."
  value       = { for k, fn in google_cloudfunctions2_function.exporter : k => fn.service_config[0].environment_variables["STATE_URI"] }
}

output "run_now_commands" {
  description = "Starts one export run of an instance now instead of waiting for its schedule."
  value       = { for k, j in google_cloud_scheduler_job.tick : k => "gcloud scheduler jobs run ${j.name} --location=${var.region} --project=${var.project_id}" }
}

output "logs_explorer_query" {
  description = "Logs Explorer query that shows the exported entries of every instance."
  value       = local.logs_explorer_query
}

output "logs_explorer_url" {
  description = "Link to Logs Explorer with that query."
  value       = "https://console.cloud.google.com/logs/query;query=${urlencode(local.logs_explorer_query)}?project=${var.project_id}"
}

output "logs_explorer_queries" {
  description = "Logs Explorer query of each instance's entries (by labels.looker_host)."
  value       = { for k, i in local.instances : k => "${local.logs_explorer_query} AND labels.looker_host=\"${i.host}\"" }
}

output "log_bucket" {
  description = "The dedicated long-retention log bucket (projects/P/locations/L/buckets/B), or null when enable_long_retention is false. In Logs Explorer, choose it under Refine scope > Log scope / Storage."
  value       = local.retention ? google_logging_project_bucket_config.audit[0].id : null
}

output "bigquery_dataset" {
  description = "The BigQuery linked dataset (PROJECT.DATASET) over the log bucket, or null; query its _AllLogs view."
  value       = local.linked_dataset ? "${var.project_id}.${google_logging_linked_dataset.audit[0].link_id}" : null
}

output "alert_policies" {
  description = "The alert policies created (name => resource name), for adding channels or snoozing."
  value = merge(
    { for k, p in google_monitoring_alert_policy.security : k => p.name },
    { for k, p in google_monitoring_alert_policy.security_log_match : k => p.name },
    { for p in google_monitoring_alert_policy.exporter_lag : "exporter_lag" => p.name },
    { for p in google_monitoring_alert_policy.exporter_failures : "exporter_failures" => p.name },
    { for p in google_monitoring_alert_policy.exporter_no_success : "exporter_no_success" => p.name },
  )
}

output "dashboard_url" {
  description = "Link to this stack's Cloud Monitoring dashboard (exporter health and security signals), or null when enable_dashboard is false."
  # The resource ID is projects/PROJECT_NUMBER/dashboards/DASHBOARD_ID; the console link takes the last part.
  value = var.enable_dashboard ? "https://console.cloud.google.com/monitoring/dashboards/builder/${regex("[^/]+$", google_monitoring_dashboard.this[0].id)}?project=${var.project_id}" : null
}

output "egress_ip" {
  description = "The static source address of every function whose traffic goes through the VPC (vpc_egress.static_ip), or null. Add it to Looker's IP allowlist (Looker-hosted: Admin > Server > IP Allowlist, rule for the API; Looker (Google Cloud core) public IP: the instance's authorized networks; self-hosted: your firewall), see docs/networking.md."
  value       = local.static_ip ? google_compute_address.egress[0].address : null
}

output "vpc_egress" {
  description = "How each instance's function reaches its Looker: PRIVATE_RANGES_ONLY or ALL_TRAFFIC through the VPC, or NONE."
  value       = { for k, i in local.instances : k => i.vpc_egress }
}
