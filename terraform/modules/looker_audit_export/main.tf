# Looker System Activity -> Cloud Logging exporter.
#
# Cloud Scheduler --(tick)--> Pub/Sub topic --(Eventarc)--> 2nd gen function
#   --> Looker API (credentials from Secret Manager)
#   --> Cloud Logging (log entries shaped like audit logs)
#   --> cursor in the state bucket (STATE_URI)
#
# One such chain per Looker instance (var.looker_instances), all writing to
# the same log; the entries tell the instances apart by labels.looker_host.
#
# Files: the project, the APIs and the common labels here; instances.tf (the
# instances with their defaults filled in, and the exported log's filter);
# iam.tf (every service account and grant); function.tf (topics, scheduler
# jobs, functions); source.tf and source_excludes.tf (the zipped source);
# storage.tf (state bucket, one cursor object per instance); secret.tf (the
# credentials secrets, containers only); retention.tf (optional long-retention
# log bucket); signals.tf (the security signals' filters); health.tf (exporter
# health metrics, how each signal alerts); alerts.tf (log-based metrics and
# alert policies); dashboard.tf and dashboard_layout.tf (the dashboard);
# network.tf (optional VPC egress and static source address); variables.tf,
# outputs.tf, versions.tf (inputs, outputs, required versions).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  apis = toset(concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    ],
    # The linked dataset is a BigQuery dataset.
    local.linked_dataset ? ["bigquery.googleapis.com"] : [],
    # Only with var.vpc_egress (network.tf): Direct VPC egress and the static
    # address's router and NAT are Compute Engine resources; a connector is
    # Serverless VPC Access.
    local.direct_vpc ? ["compute.googleapis.com"] : [],
    local.connector != null ? ["vpcaccess.googleapis.com"] : [],
  ))

  labels = merge(var.labels, {
    app = "looker-audit-export"
  })
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project = var.project_id
  service = each.value

  # Destroying this stack must not switch APIs off for everything else in the project.
  disable_on_destroy         = false
  disable_dependent_services = false
}
