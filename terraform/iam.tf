# Every identity and every grant of this stack, in one place.
#
#   runtime SA  - what the function code runs as
#   trigger SA  - what Eventarc uses to push the Pub/Sub message to the function
#   build SA    - what Cloud Build uses to turn the source zip into an image
#
# No basic roles (owner/editor/viewer); no project-wide Secret Manager or
# Cloud Storage role. Only roles/logging.logWriter is project-wide, because
# log writes cannot be granted on anything smaller than a project.

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-run"
  display_name = "Looker audit export - function runtime"
  description  = "Reads the Looker credentials secret, reads/writes the export cursor, writes log entries."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-trigger"
  display_name = "Looker audit export - Eventarc trigger"
  description  = "Identity Eventarc uses to invoke the export function for each scheduler tick."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Looker audit export - Cloud Build"
  description  = "Builds the function image from the source zip (instead of the broad default build account)."

  depends_on = [google_project_service.apis]
}

# --- runtime SA -------------------------------------------------------------

# Write the exported entries. Log writes can only be granted on the project.
resource "google_project_iam_member" "runtime_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

# Read the Looker API credentials: this one secret only.
resource "google_secret_manager_secret_iam_member" "runtime_secret_accessor" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.looker_credentials.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

# Read and (over)write the cursor object: the state bucket only.
# objectUser = get/list/create/update/delete objects, but no IAM changes
# (unlike objectAdmin) and nothing on any other bucket.
resource "google_storage_bucket_iam_member" "runtime_state_object_user" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.runtime.email}"
}

# --- trigger SA -------------------------------------------------------------

# Invoke this function's Cloud Run service only (not every service in the project).
resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.exporter.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# The Pub/Sub service agent mints the OIDC token of the trigger SA for each
# push. Granted on the trigger SA itself, not project-wide. (Projects whose
# Pub/Sub agent was created before April 2021 do not get this by default.)
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  depends_on = [google_project_service.apis]
}

# --- build SA ---------------------------------------------------------------

# Write the build logs. Log writes can only be granted on the project.
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Push the function image: this stack's repository only.
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Read the source zip: the source bucket only, read-only.
resource "google_storage_bucket_iam_member" "build_source_viewer" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}
