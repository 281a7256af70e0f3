# The export cursors: one object per Looker instance,
# STATE_URI = gs://<this bucket>/<instance key>/state.json.

resource "google_storage_bucket" "state" {
  # checkov:skip=CKV_GCP_62: Holds one small cursor object (no event payloads) used by one service account; if access must be audited, use Cloud Storage Data Access audit logs rather than a second access-log bucket.
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-state"
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Losing the cursor means re-exporting or skipping events: keep it on destroy.
  force_destroy = false

  # Earlier cursors stay recoverable for a week (e.g. to replay a window).
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}
