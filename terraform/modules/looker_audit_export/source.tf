# The function source: the project root (local.repo_root), zipped without
# what .gcloudignore excludes (local.source_excludes, see source_excludes.tf),
# uploaded under a name that changes with its content, built by Cloud Build
# into an image.

data "archive_file" "source" {
  type       = "zip"
  source_dir = local.repo_root
  # path.root: the same file as before the module (terraform/.build/), so the
  # uploaded object's `source` does not change on an upgrade.
  output_path      = coalesce(var.source_archive_path, "${path.root}/.build/function-source.zip")
  output_file_mode = "0644" # same zip (and hash) on every machine
  excludes         = local.source_excludes

  lifecycle {
    precondition {
      condition     = alltrue([for p in local.gcloudignore_patterns : !startswith(p, "!")])
      error_message = ".gcloudignore may not use negated patterns (!pattern): archive_file cannot express them."
    }
  }
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62: Holds only rebuildable source zips (also in git); if object reads must be audited, use Cloud Storage Data Access audit logs rather than a second access-log bucket.
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-source"
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Only rebuildable artifacts live here.
  force_destroy = true

  versioning {
    enabled = true
  }

  # Old zips are deleted by Terraform on each new upload; drop their
  # noncurrent copies after a week.
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

resource "google_storage_bucket_object" "source" {
  bucket       = google_storage_bucket.source.name
  name         = "function-source/${data.archive_file.source.output_md5}.zip"
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}

resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84: Holds only the function image (code, no data, no secrets); Google-managed encryption is enough and a CMEK would add a KMS key to manage.
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  format        = "DOCKER"
  description   = "Images of the Looker audit export function (built by Cloud Build)."
  labels        = local.labels

  # Keep the last few images (rollback), delete the rest after 30 days.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}
