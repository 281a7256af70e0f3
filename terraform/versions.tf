terraform {
  # >= 1.5 for strcontains(), used to read .gcloudignore (source_excludes.tf).
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    archive = {
      # >= 2.5: `excludes` accepts globs (doublestar `**`), see source_excludes.tf.
      source  = "hashicorp/archive"
      version = "~> 2.5"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
