# The Looker API credentials: one secret container per Looker instance.
#
# The value never passes through Terraform (no variable, no
# google_secret_manager_secret_version, nothing in the state). Add it once
# after `terraform apply` with the commands in the `secret_add_version_commands`
# output; each function reads versions/latest of its own secret.

resource "google_secret_manager_secret" "looker_credentials" {
  for_each = local.instances

  project   = var.project_id
  secret_id = "${var.name_prefix}-${each.key}-looker-credentials"
  labels    = merge(local.labels, { looker_instance = each.key })

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}
