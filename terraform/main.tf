# Looker System Activity -> Cloud Logging exporter.
#
# Cloud Scheduler --(tick)--> Pub/Sub topic --(Eventarc)--> 2nd gen function
#   --> Looker API (credentials from Secret Manager)
#   --> Cloud Logging (log entries shaped like audit logs)
#   --> cursor in the state bucket (STATE_URI)
#
# Files: apis and names here; iam.tf (every service account and grant);
# function.tf (topic, scheduler job, function); source.tf and
# source_excludes.tf (the zipped source); storage.tf (state bucket);
# secret.tf (the credentials secret, container only).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  apis = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])

  labels = merge(var.labels, {
    app = "looker-audit-export"
  })

  function_name = "${var.name_prefix}-export"
  state_uri     = "gs://${google_storage_bucket.state.name}/looker/state.json"

  # The environment contract of main.py / looker_audit_export.config.
  function_environment = {
    GOOGLE_CLOUD_PROJECT      = var.project_id
    LOOKER_BASE_URL           = trimsuffix(var.looker_base_url, "/")
    LOOKER_CREDENTIALS_SECRET = "${google_secret_manager_secret.looker_credentials.id}/versions/latest"
    LOOKER_VERIFY_SSL         = tostring(var.looker_verify_ssl)
    LOOKER_TIMEOUT_SECONDS    = tostring(var.looker_timeout_seconds)
    LOG_NAME                  = var.log_name
    STATE_URI                 = local.state_uri
    INITIAL_LOOKBACK_MINUTES  = tostring(var.initial_lookback_minutes)
    SETTLE_SECONDS            = tostring(var.settle_seconds)
    RUN_BUDGET_SECONDS        = tostring(var.run_budget_seconds)
    MAX_MESSAGE_AGE_SECONDS   = tostring(var.max_message_age_seconds)
    PAGE_SIZE                 = tostring(var.page_size)
  }

  logs_explorer_query = "logName=\"projects/${var.project_id}/logs/${var.log_name}\""
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project = var.project_id
  service = each.value

  # Destroying this stack must not switch APIs off for everything else in the project.
  disable_on_destroy         = false
  disable_dependent_services = false
}
