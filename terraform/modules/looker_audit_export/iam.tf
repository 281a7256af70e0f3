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
#   service agents - Google's own Eventarc and Pub/Sub identities: created
#                 and granted up front, so the first apply can create the
#                 functions' triggers (see the end of this file)
#
# No basic roles (owner/editor/viewer); no project-wide Secret Manager or
# unconditioned Cloud Storage role. roles/logging.logWriter is project-wide,
# because log writes cannot be granted on anything smaller than a project; the
# build account's read access to Cloud Functions' staging bucket is granted on
# the project with an IAM condition on that one bucket (it does not exist
# before the first deploy).

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

# Direct VPC egress (network.tf): Google's page asks for Cloud Run Invoker for
# the function's service account ("To authorize Direct VPC egress",
# https://docs.cloud.google.com/functions/docs/running/direct-vpc#set_up_iam_permissions).
# Granted on the instance's own service only, so it can invoke nothing else;
# only for the functions that use Direct VPC egress. The network side needs
# nothing here: the Cloud Run service agent's own role (roles/run.serviceAgent)
# covers a subnetwork of this project; a Shared VPC host project grants it
# roles/compute.networkUser on the subnetwork (docs/networking.md).
resource "google_cloud_run_v2_service_iam_member" "runtime_invoker_direct_vpc" {
  for_each = local.direct_vpc_instances

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.exporter[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.runtime[each.key].email}"
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
# The member is the agent created below, so the grant never names an agent
# that does not exist yet.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_project_service_identity.agents["pubsub.googleapis.com"].email}"
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

# Read the source zip from Cloud Functions' own staging bucket. With a custom
# build account (build_config.service_account) Cloud Functions copies the zip
# to gcf-v2-sources-<PROJECT_NUMBER>-<REGION> and Cloud Build, running as
# that account, downloads it from there; without this the first build fails
# with "Access to bucket gcf-v2-sources-... denied"
# (https://github.com/hashicorp/terraform-provider-google/issues/20571).
# The bucket does not exist before the first deploy, so the grant cannot be on
# the bucket: it is on the project, with an IAM condition on the bucket's
# resource name (projects/_/buckets/BUCKET, its objects
# projects/_/buckets/BUCKET/objects/OBJECT:
# https://cloud.google.com/iam/docs/conditions-resource-attributes#resource-name).
# The bucket itself (objects.list) or an object in it, nothing else; the
# provider's cloudfunctions2_basic_builder example grants a project-wide,
# unconditioned storage role instead.
resource "google_project_iam_member" "build_staging_viewer" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-sources-bucket"
    description = "Only Cloud Functions' source staging bucket of ${var.region}, ${local.gcf_staging_bucket}."
    expression  = "resource.name == \"projects/_/buckets/${local.gcf_staging_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.gcf_staging_bucket}/objects/\")"
  }
}

locals {
  # Cloud Functions (2nd gen) source staging bucket of this project and region.
  gcf_staging_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
}

# IAM grants take effect some time after the API call returns (most within
# about 2 minutes, some after 7 minutes or longer:
# https://cloud.google.com/iam/docs/access-change-propagation), and a build or
# trigger that runs before then fails. The
# provider's own cloudfunctions2_basic_builder example waits 60 s after the
# build grants with time_sleep for that reason; this waits
# var.iam_propagation_seconds (default 120) after every grant the first build
# and the triggers need, before any function is created. Only on create: a
# later apply waits again only when the build account's or a service agent's
# email changes (the triggers below hold just those), e.g. a new name_prefix.
# A grant added or replaced on its own is not waited for; if an apply then
# fails on that permission, apply again.
resource "time_sleep" "iam_propagation" {
  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    build_account = google_service_account.build.email
    agents        = join(",", [for a in google_project_service_identity.agents : a.email])
  }

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_viewer,
    google_project_iam_member.build_staging_viewer,
    google_project_iam_member.service_agents,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}

# --- service agents -----------------------------------------------------------

# On a brand-new project the Eventarc and Pub/Sub service agents appear, and
# get their roles, some time after the APIs are enabled: until then creating a
# function's Pub/Sub trigger fails with "Permission denied while using the
# Eventarc Service Agent" (https://github.com/hashicorp/terraform-provider-google/issues/25294).
# So, as the reporter's workaround there, the terraform-google-modules
# project_services module (activate_api_identities) and Google's own advice
# for Terraform (https://cloud.google.com/iam/docs/create-service-agents) do:
# create the agents explicitly (services.generateServiceIdentity, google-beta
# only), grant each the role Google gives it, and wait
# (time_sleep.iam_propagation) before creating the functions. Both are
# Google-managed roles meant for exactly these agents; on an older project the
# same bindings already exist. Destroying does not remove an agent (the API
# has no delete), and must not remove these bindings either: other Eventarc
# triggers and Pub/Sub pushes of the project need them. Hence prevent_destroy;
# README "Update and remove" says how to destroy the rest.
resource "google_project_service_identity" "agents" {
  provider = google-beta
  for_each = toset(keys(local.service_agent_roles))

  project = var.project_id
  service = each.value

  depends_on = [google_project_service.apis]
}

locals {
  service_agent_roles = {
    # Creates the Pub/Sub subscription behind each trigger, and pushes to it.
    "eventarc.googleapis.com" = "roles/eventarc.serviceAgent"
    # Delivers the pushes (with the trigger SA's OIDC token, see above).
    "pubsub.googleapis.com" = "roles/pubsub.serviceAgent"
  }
}

resource "google_project_iam_member" "service_agents" {
  # checkov:skip=CKV_GCP_49: checkov cannot resolve each.value; the roles are roles/eventarc.serviceAgent and roles/pubsub.serviceAgent (local.service_agent_roles), the ones Google itself gives these two Google-managed agents, and no account of this stack gets them.
  for_each = local.service_agent_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_project_service_identity.agents[each.key].email}"

  lifecycle {
    # Shared with everything else in the project that uses Eventarc or Pub/Sub push.
    prevent_destroy = true
  }
}
