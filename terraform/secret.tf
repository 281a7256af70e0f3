# The Looker API credentials: the secret container only.
#
# The value never passes through Terraform (no variable, no
# google_secret_manager_secret_version, nothing in the state). Add it once
# after `terraform apply` with the command in the `secret_add_version_command`
# output; the function reads versions/latest.

resource "google_secret_manager_secret" "looker_credentials" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-looker-credentials"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}
