terraform {
  # >= 1.5 for strcontains(), used to read .gcloudignore (the module's source_excludes.tf).
  required_version = ">= 1.5"

  required_providers {
    # >= 7.43: service_config.direct_vpc_network_interface and
    # direct_vpc_egress of google_cloudfunctions2_function (network.tf) are in
    # the GA schema of 7.43.0 and 7.46.1 (checked); an older lock file needs
    # `terraform init -upgrade`.
    google = {
      source  = "hashicorp/google"
      version = "~> 7.43"
    }
    # Only for google_project_service_identity (modules/looker_audit_export/iam.tf), which the google
    # provider does not have: it creates the Eventarc and Pub/Sub service
    # agents up front on a new project.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.43"
    }
    archive = {
      # >= 2.5: `excludes` accepts globs (doublestar `**`), see source_excludes.tf.
      source  = "hashicorp/archive"
      version = "~> 2.5"
    }
    # time_sleep: waits for IAM grants and new log-based metrics to take
    # effect (the module's iam.tf and alerts.tf); the google provider does not retry those.
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
