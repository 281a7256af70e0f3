# The Looker instances (var.looker_instances) with the stack-wide defaults
# filled in, and the filter of the exported log. One scheduler job, topic,
# function, runtime service account, secret and cursor object per key.
#
# This file only holds locals, so the tests can evaluate it with
# `terraform console` (and variables.tf) without downloading any provider.

locals {
  # Each Looker instance, with the stack-wide defaults filled in. The key is
  # part of every per-instance name and of the cursor's object path.
  instances = {
    for key, inst in var.looker_instances : key => {
      base_url                 = trimsuffix(inst.base_url, "/")
      host                     = regex("^https://([^/?#]+)", trimsuffix(inst.base_url, "/"))[0] # = labels.looker_host (port included)
      schedule                 = coalesce(inst.schedule, var.schedule)
      verify_ssl               = inst.verify_ssl != null ? inst.verify_ssl : var.looker_verify_ssl
      timeout_seconds          = coalesce(inst.timeout_seconds, var.looker_timeout_seconds)
      page_size                = coalesce(inst.page_size, var.page_size)
      initial_lookback_minutes = coalesce(inst.initial_lookback_minutes, var.initial_lookback_minutes)
      function_name            = "${var.name_prefix}-${key}-export"
      # Environment variables set only when given (function.tf merges them in):
      # without query_timezone the exporter reads the zone from Looker's settings.
      optional_env = { for name, value in { LOOKER_QUERY_TIMEZONE = inst.query_timezone } : name => value if value != null }
      # How the function reaches this Looker (network.tf): PRIVATE_RANGES_ONLY or
      # ALL_TRAFFIC through the VPC of var.vpc_egress, or NONE. The stack's
      # default is var.vpc_egress.egress; with static_ip, ALL_TRAFFIC.
      vpc_egress = coalesce(inst.vpc_egress, var.vpc_egress == null ? "NONE" : (
        var.vpc_egress.static_ip ? "ALL_TRAFFIC" : coalesce(var.vpc_egress.egress, "PRIVATE_RANGES_ONLY")
      ))
    }
  }

  # The events log (what the security signals watch), and every log the
  # exporter writes (what long retention routes): also the query history
  # when that stream is exported.
  events_log_filter = "logName=\"projects/${var.project_id}/logs/${var.log_name}\""
  log_filter = (contains(var.export_streams, "history")
    ? "(${local.events_log_filter} OR logName=\"projects/${var.project_id}/logs/${var.history_log_name}\")"
  : local.events_log_filter)
  logs_explorer_query = local.events_log_filter
}
