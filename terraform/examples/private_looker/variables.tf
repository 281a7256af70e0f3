variable "project_id" {
  description = "ID of the Google Cloud project that hosts the exporter (and, here, the VPC network)."
  type        = string
}

variable "region" {
  description = "Region of the functions; the subnetwork must be in it."
  type        = string
  default     = "us-central1"
}

variable "looker_base_url" {
  description = "The private Looker's API host, e.g. https://looker.internal.example.com (its private IP's DNS name)."
  type        = string

  validation {
    condition     = can(regex("^https://[^/?#\\s]+(:[0-9]+)?/?$", var.looker_base_url))
    error_message = "looker_base_url must be an https:// URL with a host and no path."
  }
}

variable "network" {
  description = "The VPC network the private Looker is reached through (its name): the Cloud Router belongs to it."
  type        = string
}

variable "subnetwork" {
  description = "The subnetwork (in region) the functions take their addresses from, served by the Cloud NAT: a name, or projects/HOST/regions/REGION/subnetworks/NAME."
  type        = string
}
