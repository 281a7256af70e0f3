# The module's outputs, unchanged (modules/looker_audit_export/outputs.tf).

output "function_names" {
  description = "Name of each instance's 2nd gen Cloud Function."
  value       = module.looker_audit_export.function_names
}

output "function_uris" {
  description = "URI of each function's Cloud Run service (internal ingress only: not callable from the internet)."
  value       = module.looker_audit_export.function_uris
}

output "topics" {
  description = "Pub/Sub topic that triggers each instance's export run (full resource ID)."
  value       = module.looker_audit_export.topics
}

output "scheduler_jobs" {
  description = "Cloud Scheduler job of each instance."
  value       = module.looker_audit_export.scheduler_jobs
}

output "runtime_service_accounts" {
  description = "Email of the service account each instance's function runs as."
  value       = module.looker_audit_export.runtime_service_accounts
}

output "trigger_service_account" {
  description = "Email of the service account Eventarc uses to invoke the functions."
  value       = module.looker_audit_export.trigger_service_account
}

output "build_service_account" {
  description = "Email of the service account Cloud Build uses to build the functions."
  value       = module.looker_audit_export.build_service_account
}

output "secret_ids" {
  description = "Secret Manager secret that must hold each instance's Looker API credentials (projects/PROJECT/secrets/NAME)."
  value       = module.looker_audit_export.secret_ids
}

output "secret_add_version_commands" {
  description = "Run each once after the first apply (and again to rotate), with that instance's Looker API client ID and secret: stores the credentials without passing them through Terraform."
  value       = module.looker_audit_export.secret_add_version_commands
}

output "state_uris" {
  description = "Where each instance's export cursor is kept (STATE_URI)."
  value       = module.looker_audit_export.state_uris
}

output "run_now_commands" {
  description = "Starts one export run of an instance now instead of waiting for its schedule."
  value       = module.looker_audit_export.run_now_commands
}

output "logs_explorer_query" {
  description = "Logs Explorer query that shows the exported entries of every instance."
  value       = module.looker_audit_export.logs_explorer_query
}

output "logs_explorer_url" {
  description = "Link to Logs Explorer with that query."
  value       = module.looker_audit_export.logs_explorer_url
}

output "logs_explorer_queries" {
  description = "Logs Explorer query of each instance's entries (by labels.looker_host)."
  value       = module.looker_audit_export.logs_explorer_queries
}

output "log_bucket" {
  description = "The dedicated long-retention log bucket (projects/P/locations/L/buckets/B), or null when enable_long_retention is false. In Logs Explorer, choose it under Refine scope > Log scope / Storage."
  value       = module.looker_audit_export.log_bucket
}

output "bigquery_dataset" {
  description = "The BigQuery linked dataset (PROJECT.DATASET) over the log bucket, or null; query its _AllLogs view."
  value       = module.looker_audit_export.bigquery_dataset
}

output "alert_policies" {
  description = "The alert policies created (name => resource name), for adding channels or snoozing."
  value       = module.looker_audit_export.alert_policies
}

output "dashboard_url" {
  description = "Link to this stack's Cloud Monitoring dashboard (exporter health and security signals), or null when enable_dashboard is false."
  value       = module.looker_audit_export.dashboard_url
}

output "egress_ip" {
  description = "The static source address of every function whose traffic goes through the VPC (vpc_egress.static_ip), or null. Add it to Looker's IP allowlist (Looker-hosted: Admin > Server > IP Allowlist, rule for the API; Looker (Google Cloud core) public IP: the instance's authorized networks; self-hosted: your firewall), see docs/networking.md."
  value       = module.looker_audit_export.egress_ip
}

output "vpc_egress" {
  description = "How each instance's function reaches its Looker: PRIVATE_RANGES_ONLY or ALL_TRAFFIC through the VPC, or NONE."
  value       = module.looker_audit_export.vpc_egress
}
