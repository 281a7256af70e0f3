# The tick, once per Looker instance (local.instances, keyed like
# var.looker_instances): Cloud Scheduler -> its own Pub/Sub topic -> Eventarc
# -> its own function. One topic per instance, so a tick starts exactly one
# instance's export.

resource "google_pubsub_topic" "ticks" {
  # checkov:skip=CKV_GCP_83: The topic only carries the constant "tick" message (no data), so Google-managed encryption is enough; a CMEK would add a KMS key to manage for nothing.
  for_each = local.instances

  project = var.project_id
  name    = "${var.name_prefix}-${each.key}-ticks"
  labels  = merge(local.labels, { looker_instance = each.key })

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "tick" {
  for_each = local.instances

  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-${each.key}-tick"
  description = "Starts one Looker System Activity export run of ${each.value.base_url}."
  schedule    = each.value.schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.ticks[each.key].id
    # The payload is ignored by the function but Pub/Sub needs a non-empty message.
    data = base64encode("tick")
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "exporter" {
  for_each = local.instances

  project     = var.project_id
  location    = var.region
  name        = each.value.function_name
  description = "Exports Looker System Activity events of ${each.value.base_url} to Cloud Logging (log ${var.log_name})."
  labels      = merge(local.labels, { looker_instance = each.key })

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
    # Each instance runs as its own account: it can read only its own secret
    # and write only its own cursor object (iam.tf).
    service_account_email = google_service_account.runtime[each.key].email
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

    # Egress through the customer's VPC (network.tf): Direct VPC egress on a
    # subnetwork, or a Serverless VPC Access connector; nothing when this
    # instance's vpc_egress is NONE (the default without var.vpc_egress).
    dynamic "direct_vpc_network_interface" {
      for_each = local.direct_vpc && each.value.vpc_egress != "NONE" ? [var.vpc_egress] : []
      content {
        network    = direct_vpc_network_interface.value.network
        subnetwork = direct_vpc_network_interface.value.subnetwork
        tags       = direct_vpc_network_interface.value.network_tags
      }
    }
    direct_vpc_egress             = local.direct_vpc && each.value.vpc_egress != "NONE" ? "VPC_EGRESS_${each.value.vpc_egress}" : null
    vpc_connector                 = local.connector != null && each.value.vpc_egress != "NONE" ? local.connector : null
    vpc_connector_egress_settings = local.connector != null && each.value.vpc_egress != "NONE" ? each.value.vpc_egress : null

    # The environment contract of main.py / looker_audit_export.config, and
    # the per-instance variables that are set only when given (instances.tf).
    environment_variables = merge({
      GOOGLE_CLOUD_PROJECT      = var.project_id
      LOOKER_BASE_URL           = each.value.base_url
      LOOKER_CREDENTIALS_SECRET = "${google_secret_manager_secret.looker_credentials[each.key].id}/versions/latest"
      LOOKER_VERIFY_SSL         = tostring(each.value.verify_ssl)
      LOOKER_TIMEOUT_SECONDS    = tostring(each.value.timeout_seconds)
      LOG_NAME                  = var.log_name
      EXPORT_STREAMS            = join(",", var.export_streams)
      HISTORY_LOG_NAME          = var.history_log_name
      # Own System Activity queries in the history stream (left out by default).
      HISTORY_INCLUDE_OWN_QUERIES = tostring(var.history_include_own_queries)
      # One cursor object per instance, under the instance's key: the
      # runtime account may only touch objects under that prefix (iam.tf).
      STATE_URI                = "gs://${google_storage_bucket.state.name}/${each.key}/state.json"
      INITIAL_LOOKBACK_MINUTES = tostring(each.value.initial_lookback_minutes)
      SETTLE_SECONDS           = tostring(var.settle_seconds)
      RUN_BUDGET_SECONDS       = tostring(var.run_budget_seconds)
      MAX_MESSAGE_AGE_SECONDS  = tostring(var.max_message_age_seconds)
      PAGE_SIZE                = tostring(each.value.page_size)
    }, each.value.optional_env)
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.ticks[each.key].id
    service_account_email = google_service_account.trigger.email
    # A failed run is retried. A message that keeps failing is dropped by the
    # function (WARNING in its log) once older than MAX_MESSAGE_AGE_SECONDS,
    # so it cannot loop for days; the next tick resumes from the cursor.
    retry_policy = "RETRY_POLICY_RETRY"
  }

  depends_on = [
    google_project_service.apis,
    # The build grants (also on Cloud Functions' staging bucket) and the
    # Eventarc and Pub/Sub service agents' grants must have taken effect
    # before the first build and the trigger's creation (iam.tf).
    time_sleep.iam_propagation,
    # Runtime grants must exist before the first tick.
    google_project_iam_member.runtime_log_writer,
    google_secret_manager_secret_iam_member.runtime_secret_accessor,
    google_storage_bucket_iam_member.runtime_state_object_user,
  ]

  lifecycle {
    precondition {
      condition     = each.value.vpc_egress == "NONE" || var.vpc_egress != null
      error_message = "looker_instances.${each.key}.vpc_egress is ${each.value.vpc_egress}, but vpc_egress (the network to send it through) is not set."
    }
    precondition {
      # Direct VPC egress takes addresses from a subnetwork of the function's region.
      condition     = !local.direct_vpc || try(local.subnetwork_parts.region, var.region) == var.region
      error_message = "vpc_egress.subnetwork ${coalesce(local.subnetwork_id, "-")} is not in region ${var.region}, where the functions run."
    }
  }
}
