# A Looker (Google Cloud core) instance with a private IP only, reached from
# the exporter through the customer's VPC, with a static source address for
# any Looker that allowlists by IP. Calls the module by its relative path; a
# platform team uses a git source instead (see the module's README.md).
#
# The network and the subnetwork exist already (the Looker instance's VPC);
# the module adds a reserved address, a Cloud Router and a Cloud NAT that
# serves only that subnetwork, and sends each function's traffic into it by
# Direct VPC egress. See docs/networking.md.

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

module "looker_audit_export" {
  source = "../../modules/looker_audit_export"

  project_id = var.project_id
  region     = var.region

  looker_instances = {
    # The private Looker: its API address is only reachable inside the VPC.
    core = { base_url = var.looker_base_url }
  }

  vpc_egress = {
    network    = var.network
    subnetwork = var.subnetwork
    # A reserved address, a Cloud Router and a Cloud NAT on that subnetwork;
    # every function sends all its traffic into the VPC (ALL_TRAFFIC).
    static_ip = true
  }

  # This example is applied on its own: keep its zip beside it.
  source_archive_path = "${path.root}/.build/function-source.zip"
}
