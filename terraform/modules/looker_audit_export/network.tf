# Reaching a private Looker (var.vpc_egress; docs/networking.md).
#
# Each instance's function sends its traffic through the customer's VPC when
# its vpc_egress (instances.tf) is not NONE: by Direct VPC egress on a
# subnetwork, or by a Serverless VPC Access connector that already exists.
# https://docs.cloud.google.com/functions/docs/running/direct-vpc
#
# static_ip: a reserved external address, a Cloud Router and a Cloud NAT that
# serves only that subnetwork with only that address (MANUAL_ONLY), so that a
# Looker behind an IP allowlist sees one source address (output egress_ip).
# https://docs.cloud.google.com/nat/docs/overview
#
# Google APIs (Secret Manager, Cloud Logging, Cloud Storage) stay reachable:
# with PRIVATE_RANGES_ONLY their public addresses bypass the VPC; with
# ALL_TRAFFIC they go through the NAT (static_ip) or need Private Google
# Access on the subnetwork, which the plan checks (data source below).

locals {
  direct_vpc = try(var.vpc_egress.subnetwork, null) != null
  static_ip  = try(var.vpc_egress.static_ip, false)

  # The subnetwork as project, region and name: a bare name is in project_id
  # and region; a Shared VPC subnetwork is projects/HOST/regions/R/subnetworks/S.
  subnetwork_parts = local.direct_vpc ? (
    strcontains(var.vpc_egress.subnetwork, "/")
    ? regex("^projects/(?P<project>[^/]+)/regions/(?P<region>[^/]+)/subnetworks/(?P<name>[^/]+)$", var.vpc_egress.subnetwork)
    : { project = var.project_id, region = var.region, name = var.vpc_egress.subnetwork }
  ) : null
  subnetwork_id = local.direct_vpc ? "projects/${local.subnetwork_parts.project}/regions/${local.subnetwork_parts.region}/subnetworks/${local.subnetwork_parts.name}" : null

  connector = try(var.vpc_egress.connector, null) == null ? null : (
    strcontains(var.vpc_egress.connector, "/")
    ? var.vpc_egress.connector
    : "projects/${var.project_id}/locations/${var.region}/connectors/${var.vpc_egress.connector}"
  )

  # The instances whose function goes through the VPC, and by which path.
  vpc_instances        = { for k, i in local.instances : k => i if i.vpc_egress != "NONE" }
  direct_vpc_instances = local.direct_vpc ? local.vpc_instances : {}

  # Google API calls go into the VPC with ALL_TRAFFIC; without the NAT they
  # need Private Google Access on the subnetwork.
  needs_private_google_access = !local.static_ip && anytrue([for i in values(local.direct_vpc_instances) : i.vpc_egress == "ALL_TRAFFIC"])
}

# Read at plan time (it is in the network's project, which has the Compute
# Engine API); the deployer needs compute.subnetworks.get there.
data "google_compute_subnetwork" "egress" {
  count = local.direct_vpc && try(var.vpc_egress.check_private_google_access, true) ? 1 : 0

  project = local.subnetwork_parts.project
  region  = local.subnetwork_parts.region
  name    = local.subnetwork_parts.name

  lifecycle {
    postcondition {
      # A conditional, not ||: Terraform evaluates both sides of ||.
      condition     = local.needs_private_google_access ? coalesce(self.private_ip_google_access, false) : true
      error_message = "The subnetwork ${local.subnetwork_id} has no Private Google Access, and a function sends all its traffic into the VPC (ALL_TRAFFIC without static_ip): it could not reach Secret Manager, Cloud Logging or Cloud Storage. Turn it on: gcloud compute networks subnets update ${local.subnetwork_parts.name} --project=${local.subnetwork_parts.project} --region=${local.subnetwork_parts.region} --enable-private-ip-google-access (or set vpc_egress.check_private_google_access = false if the subnetwork's owner confirms it is on)."
    }
  }
}

resource "google_compute_address" "egress" {
  count = local.static_ip ? 1 : 0

  # In the network's project (a Shared VPC host project), beside its NAT.
  project      = local.subnetwork_parts.project
  region       = var.region
  name         = "${var.name_prefix}-egress"
  description  = "Source address of the Looker audit export functions (Cloud NAT ${var.name_prefix}-egress): add it to Looker's IP allowlist."
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
  labels       = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_compute_router" "egress" {
  count = local.static_ip ? 1 : 0

  project = local.subnetwork_parts.project
  region  = var.region
  name    = "${var.name_prefix}-egress"
  network = var.vpc_egress.network

  depends_on = [google_project_service.apis]
}

resource "google_compute_router_nat" "egress" {
  count = local.static_ip ? 1 : 0

  project = local.subnetwork_parts.project
  region  = var.region
  router  = google_compute_router.egress[0].name
  name    = "${var.name_prefix}-egress"

  # Only the reserved address, and only for the functions' subnetwork.
  nat_ip_allocate_option             = "MANUAL_ONLY"
  nat_ips                            = [google_compute_address.egress[0].self_link]
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"
  subnetwork {
    name                    = local.subnetwork_id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  # Translation errors (e.g. out of ports) in Cloud Logging.
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
