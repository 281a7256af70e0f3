# Every identity and every grant of this stack, in one place.
#
#   runtime SAs - what the function code runs as: one per Looker instance, so
#                 an instance's function can read only its own credentials
#                 secret and write only its own cursor object
#   trigger SA  - what Eventarc uses to push the Pub/Sub messages to the
#                 functions (shared: it can only invoke this stack's functions)
#   build SA    - what Cloud Build uses to turn the source zip into an image
#                 (shared: one source, one image repository)
#
# No basic roles (owner/editor/viewer); no project-wide Secret Manager or
# Cloud Storage role. Only roles/logging.logWriter is project-wide, because
# log writes cannot be granted on anything smaller than a project.

resource "google_service_account" "runtime" {
  for_each = local.instances

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}-run"
  display_name = "Looker audit export - function runtime (${each.key})"
  description  = "Reads the ${each.key} Looker credentials secret, reads/writes the ${each.key} export cursor, writes log entries."

  lifecycle {
    precondition {
      condition     = length("${var.name_prefix}-${each.key}-run") <= 30
      error_message = "Service account ID ${var.name_prefix}-${each.key}-run is longer than 30 characters: shorten name_prefix or the looker_instances key (together at most 25 characters)."
    }
  }

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
  for_each = local.instances

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.runtime[each.key].email}"
}

# Read the Looker API credentials: this instance's secret only.
resource "google_secret_manager_secret_iam_member" "runtime_secret_accessor" {
  for_each = local.instances

  project   = var.project_id
  secret_id = google_secret_manager_secret.looker_credentials[each.key].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime[each.key].email}"
}

# Read and (over)write the cursor object: objects under "<key>/" in the state
# bucket only (an IAM condition on the object name; the bucket has uniform
# bucket-level access, which IAM conditions need). objectUser = get/create/
# update/delete objects, but no IAM changes (unlike objectAdmin). The
# exporter reads its one object by name, so it needs no list permission
# (objects.list is checked on the bucket, which the condition excludes).
resource "google_storage_bucket_iam_member" "runtime_state_object_user" {
  for_each = local.instances

  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.runtime[each.key].email}"

  condition {
    title       = "looker-cursor-${each.key}"
    description = "Only the cursor objects of Looker instance ${each.key}."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.state.name}/objects/${each.key}/\")"
  }
}

# --- trigger SA -------------------------------------------------------------

# Invoke this stack's functions' Cloud Run services only (not every service in the project).
resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  for_each = local.instances

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.exporter[each.key].service_config[0].service
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
