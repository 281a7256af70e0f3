# The tick: Cloud Scheduler -> Pub/Sub topic -> Eventarc -> function.

resource "google_pubsub_topic" "ticks" {
  # checkov:skip=CKV_GCP_83: The topic only carries the constant "tick" message (no data), so Google-managed encryption is enough; a CMEK would add a KMS key to manage for nothing.
  project = var.project_id
  name    = "${var.name_prefix}-ticks"
  labels  = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "tick" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-tick"
  description = "Starts one Looker System Activity export run."
  schedule    = var.schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.ticks.id
    # The payload is ignored by the function but Pub/Sub needs a non-empty message.
    data = base64encode("tick")
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "exporter" {
  project     = var.project_id
  location    = var.region
  name        = local.function_name
  description = "Exports Looker System Activity events to Cloud Logging (log ${var.log_name})."
  labels      = local.labels

  build_config {
    runtime     = var.python_runtime
    entry_point = "export_system_activity"
    # A dedicated build identity and image repository (see iam.tf) instead of
    # the default Compute Engine / Cloud Build account.
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        # The object name contains the zip's hash: a code change redeploys.
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.runtime.email
    # One instance, one request at a time: two runs never race on the cursor.
    min_instance_count               = 0
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    available_memory                 = var.function_memory
    # The exporter stops starting pages after RUN_BUDGET_SECONDS and then
    # commits; the extra minute is for that commit. At most 540 s (validated).
    timeout_seconds = var.run_budget_seconds + 60
    # Only Eventarc (Pub/Sub push) reaches it; nothing from the internet.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.ticks.id
    service_account_email = google_service_account.trigger.email
    # A failed run is retried. A message that keeps failing is dropped by the
    # function (WARNING in its log) once older than MAX_MESSAGE_AGE_SECONDS,
    # so it cannot loop for days; the next tick resumes from the cursor.
    retry_policy = "RETRY_POLICY_RETRY"
  }

  depends_on = [
    google_project_service.apis,
    # Build grants must exist before the first build.
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_viewer,
    # Runtime grants must exist before the first tick.
    google_project_iam_member.runtime_log_writer,
    google_secret_manager_secret_iam_member.runtime_secret_accessor,
    google_storage_bucket_iam_member.runtime_state_object_user,
  ]
}
