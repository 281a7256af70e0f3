# Long retention (optional, var.enable_long_retention).
#
#   exported entries --sink--> dedicated log bucket (retention_days, default 400)
#                    --X-----> _Default bucket (30 days), by an exclusion
#
# The sink routes within the project, so it needs no grant: a sink writing to
# a log bucket of its own project does not use its writer identity. The
# exclusion (the legacy exclusions API manages the _Default sink's exclusions)
# keeps the entries from being stored, and billed, a second time in _Default.
# Cloud Logging bills storage beyond 30 days of retention (see README).

locals {
  retention      = var.enable_long_retention
  linked_dataset = var.enable_long_retention && var.enable_bigquery_linked_dataset

  log_bucket_id = "${var.name_prefix}-audit"
}

resource "google_logging_project_bucket_config" "audit" {
  count = local.retention ? 1 : 0

  project        = var.project_id
  location       = var.log_bucket_location
  bucket_id      = local.log_bucket_id
  description    = "Looker System Activity audit trail (log ${var.log_name}), kept ${var.retention_days} days."
  retention_days = var.retention_days
  # Locking is irreversible: nobody can delete the bucket or shorten retention.
  locked = var.lock_log_bucket
  # Log Analytics (needed by the linked dataset) cannot be switched off again.
  enable_analytics = local.linked_dataset

  lifecycle {
    precondition {
      condition     = !var.enable_bigquery_linked_dataset || var.enable_long_retention
      error_message = "enable_bigquery_linked_dataset needs enable_long_retention = true (the dataset is linked to the dedicated log bucket)."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_project_sink" "audit" {
  count = local.retention ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}-audit-to-bucket"
  description = "Routes the exported Looker System Activity entries to the ${local.log_bucket_id} log bucket."
  destination = "logging.googleapis.com/${google_logging_project_bucket_config.audit[0].id}"
  # The same filter as the exclusion below: every exported entry, of every instance.
  filter = local.log_filter
  # Same-project log bucket: no grant to the writer identity is needed.
  unique_writer_identity = true
}

resource "google_logging_project_exclusion" "audit_not_in_default" {
  count = local.retention ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}-audit-not-in-default"
  description = "The Looker System Activity entries are stored in the ${local.log_bucket_id} bucket (sink ${var.name_prefix}-audit-to-bucket), not also in _Default."
  filter      = local.log_filter

  # Exclude from _Default only once the dedicated route exists.
  depends_on = [google_logging_project_sink.audit]
}

resource "google_logging_linked_dataset" "audit" {
  count = local.linked_dataset ? 1 : 0

  # BigQuery dataset ID: letters, digits and underscores.
  link_id     = replace("${var.name_prefix}_audit", "-", "_")
  bucket      = google_logging_project_bucket_config.audit[0].id
  description = "Read-only BigQuery view of the Looker System Activity audit trail (log ${var.log_name})."
}
