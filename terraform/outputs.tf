output "function_name" {
  description = "Name of the 2nd gen Cloud Function."
  value       = google_cloudfunctions2_function.exporter.name
}

output "function_uri" {
  description = "URI of the function's Cloud Run service (internal ingress only: not callable from the internet)."
  value       = google_cloudfunctions2_function.exporter.service_config[0].uri
}

output "topic" {
  description = "Pub/Sub topic that triggers an export run (full resource ID)."
  value       = google_pubsub_topic.ticks.id
}

output "scheduler_job" {
  description = "Cloud Scheduler job that publishes a tick on the schedule."
  value       = google_cloud_scheduler_job.tick.name
}

output "runtime_service_account" {
  description = "Email of the service account the function runs as."
  value       = google_service_account.runtime.email
}

output "trigger_service_account" {
  description = "Email of the service account Eventarc uses to invoke the function."
  value       = google_service_account.trigger.email
}

output "build_service_account" {
  description = "Email of the service account Cloud Build uses to build the function."
  value       = google_service_account.build.email
}

output "secret_id" {
  description = "Secret Manager secret that must hold the Looker API credentials (projects/PROJECT/secrets/NAME)."
  value       = google_secret_manager_secret.looker_credentials.id
}

output "secret_add_version_command" {
  description = "Run once after the first apply (and again to rotate), with your Looker API client ID and secret: stores the credentials without passing them through Terraform."
  value       = "printf '%s' '{\"client_id\":\"YOUR_CLIENT_ID\",\"client_secret\":\"YOUR_CLIENT_SECRET\"}' | gcloud secrets versions add ${google_secret_manager_secret.looker_credentials.secret_id} --project=${var.project_id} --data-file=-"
}

output "state_uri" {
  description = "Where the export cursor is kept (STATE_URI)."
  value       = local.state_uri
}

output "run_now_command" {
  description = "Starts one export run now instead of waiting for the schedule."
  value       = "gcloud scheduler jobs run ${google_cloud_scheduler_job.tick.name} --location=${var.region} --project=${var.project_id}"
}

output "logs_explorer_query" {
  description = "Logs Explorer query that shows the exported entries."
  value       = local.logs_explorer_query
}

output "logs_explorer_url" {
  description = "Link to Logs Explorer with that query."
  value       = "https://console.cloud.google.com/logs/query;query=${urlencode(local.logs_explorer_query)}?project=${var.project_id}"
}
