# ---------------------------------------------------------------------------
# Where to deploy
# ---------------------------------------------------------------------------

variable "project_id" {
  description = "ID of the Google Cloud project that hosts the exporter, receives the log entries and holds the Looker credentials secret."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 characters: lowercase letters, digits and hyphens, starting with a letter), not a project name or number."
  }
}

variable "region" {
  description = "Region of the function, its Eventarc trigger, the Cloud Scheduler job, the Artifact Registry repository and the buckets."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, topics, jobs, service accounts, secrets, buckets, log bucket, metrics). Change it to deploy a second, separate stack in the same project. <name_prefix>-<instance key> may be at most 25 characters."
  type        = string
  default     = "looker-audit"

  validation {
    # Service account IDs are 6-30 characters; the longest suffix is "-trigger".
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-16 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Looker
# ---------------------------------------------------------------------------

variable "looker_instances" {
  description = <<-EOT
    The Looker instances to export, keyed by a short name (1-12 characters: lowercase letters, digits, hyphens; e.g. prod, dev, acme).
    Each instance gets its own Cloud Scheduler job, Pub/Sub topic, function, runtime service account, credentials secret and cursor
    object (gs://<state bucket>/<key>/state.json); all of them write to the same log, told apart by labels.looker_host.
    base_url is the API host, e.g. https://mycompany.cloud.looker.com (LOOKER_BASE_URL). The other fields are optional and
    default to the variables of the same meaning (schedule, looker_verify_ssl, looker_timeout_seconds, page_size,
    initial_lookback_minutes). query_timezone (LOOKER_QUERY_TIMEZONE, unset by default) is for an API user that may
    not read Looker's settings (GET /api/4.0/setting answers HTTP 403 or 404 to a non-admin), or for an instance where
    the exporter measures another zone than the settings say: the IANA zone System Activity shows times in, "UTC" when
    "User Specific Time Zones" is on, else the instance's time zone (e.g. "America/New_York"); the exporter checks it
    against its measurement; see docs/time-zones.md. vpc_egress (default: var.vpc_egress's egress, or NONE without a VPC) is how this
    instance's function reaches its Looker: PRIVATE_RANGES_ONLY or ALL_TRAFFIC through the VPC of var.vpc_egress, or
    NONE (straight to the internet), so that one private Looker and one public Looker can share a stack; see
    docs/networking.md. The API credentials are NOT a variable: they go into each instance's secret with the
    command from the `secret_add_version_commands` output.
  EOT
  type = map(object({
    base_url                 = string
    schedule                 = optional(string)
    verify_ssl               = optional(bool)
    timeout_seconds          = optional(number)
    page_size                = optional(number)
    initial_lookback_minutes = optional(number)
    query_timezone           = optional(string)
    vpc_egress               = optional(string)
  }))

  validation {
    condition     = length(var.looker_instances) >= 1
    error_message = "looker_instances must hold at least one Looker instance."
  }

  validation {
    # The key is part of resource names: the runtime service account ID is
    # "<name_prefix>-<key>-run" (at most 30 characters, checked in iam.tf).
    condition     = alltrue([for key in keys(var.looker_instances) : can(regex("^[a-z]([a-z0-9-]{0,10}[a-z0-9])?$", key))])
    error_message = "Each looker_instances key must be 1-12 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }

  validation {
    condition     = alltrue([for i in values(var.looker_instances) : can(regex("^https://[^/?#\\s]+(:[0-9]+)?/?$", i.base_url))])
    error_message = "Each looker_instances base_url must be an https:// URL with a host and no path, e.g. https://mycompany.cloud.looker.com."
  }

  validation {
    # Two keys on one host would export the same events twice, with two cursors.
    condition     = length(distinct([for i in values(var.looker_instances) : lower(trimsuffix(i.base_url, "/"))])) == length(var.looker_instances)
    error_message = "Two looker_instances have the same base_url: give each Looker instance exactly one key."
  }

  validation {
    condition     = alltrue([for i in values(var.looker_instances) : i.schedule == null || length(split(" ", trimspace(coalesce(i.schedule, "x")))) == 5])
    error_message = "A looker_instances schedule must be a 5-field cron expression, e.g. \"*/10 * * * *\"."
  }

  validation {
    condition     = alltrue([for i in values(var.looker_instances) : i.timeout_seconds == null || (coalesce(i.timeout_seconds, 0) >= 10 && coalesce(i.timeout_seconds, 0) <= 300)])
    error_message = "A looker_instances timeout_seconds must be between 10 and 300."
  }

  validation {
    condition     = alltrue([for i in values(var.looker_instances) : i.page_size == null || (coalesce(i.page_size, 0) >= 100 && coalesce(i.page_size, 0) <= 50000 && floor(coalesce(i.page_size, 0)) == coalesce(i.page_size, 0))])
    error_message = "A looker_instances page_size must be a whole number between 100 and 50000."
  }

  validation {
    condition     = alltrue([for i in values(var.looker_instances) : i.initial_lookback_minutes == null || (coalesce(i.initial_lookback_minutes, 0) >= 1 && coalesce(i.initial_lookback_minutes, 0) <= 43200)])
    error_message = "A looker_instances initial_lookback_minutes must be between 1 and 43200 (30 days)."
  }

  validation {
    # An IANA-looking name (UTC, America/New_York, Etc/GMT+5); the exporter checks it against the tz database.
    condition     = alltrue([for i in values(var.looker_instances) : i.query_timezone == null || can(regex("^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", i.query_timezone))])
    error_message = "A looker_instances query_timezone must be an IANA time zone name such as \"UTC\" or \"America/New_York\", or left unset."
  }

  validation {
    condition     = alltrue([for i in values(var.looker_instances) : i.vpc_egress == null || contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC", "NONE"], coalesce(i.vpc_egress, "NONE"))])
    error_message = "A looker_instances vpc_egress must be PRIVATE_RANGES_ONLY, ALL_TRAFFIC or NONE, or left unset (the default of var.vpc_egress)."
  }
}

variable "looker_verify_ssl" {
  description = "Verify the Looker TLS certificate (LOOKER_VERIFY_SSL); the default of every instance without its own verify_ssl. Only disable for a private instance with a self-signed certificate."
  type        = bool
  default     = true
}

variable "looker_timeout_seconds" {
  description = "Timeout of one Looker API call, in seconds (LOOKER_TIMEOUT_SECONDS); the default of every instance without its own timeout_seconds."
  type        = number
  default     = 120

  validation {
    condition     = var.looker_timeout_seconds >= 10 && var.looker_timeout_seconds <= 300
    error_message = "looker_timeout_seconds must be between 10 and 300."
  }
}

variable "page_size" {
  description = "Number of System Activity events fetched per Looker query (PAGE_SIZE); the default of every instance without its own page_size."
  type        = number
  default     = 5000

  validation {
    condition     = var.page_size >= 100 && var.page_size <= 50000 && floor(var.page_size) == var.page_size
    error_message = "page_size must be a whole number between 100 and 50000."
  }
}

# ---------------------------------------------------------------------------
# Export behaviour
# ---------------------------------------------------------------------------

variable "schedule" {
  description = "Cron schedule (UTC) of the Cloud Scheduler jobs that trigger an export run; the default of every instance without its own schedule."
  type        = string
  default     = "*/10 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.schedule))) == 5
    error_message = "schedule must be a 5-field cron expression, e.g. \"*/10 * * * *\"."
  }
}

variable "log_name" {
  description = "Cloud Logging log ID the events are written to (LOG_NAME): projects/PROJECT_ID/logs/LOG_NAME."
  type        = string
  default     = "looker_system_activity_logs"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,512}$", var.log_name))
    error_message = "log_name may only contain letters, digits, underscores, periods and hyphens (no slash, no URL-encoding)."
  }
}

variable "export_streams" {
  description = "System Activity streams to export (EXPORT_STREAMS): \"events\" and, optionally, \"history\" (query history, written to history_log_name)."
  type        = list(string)
  default     = ["events"]

  validation {
    condition     = length(var.export_streams) > 0 && alltrue([for s in var.export_streams : contains(["events", "history"], s)])
    error_message = "export_streams must list some of \"events\" and \"history\"."
  }
}

variable "history_log_name" {
  description = "Cloud Logging log ID of the query history stream (HISTORY_LOG_NAME), when export_streams includes \"history\"."
  type        = string
  default     = "looker_query_history"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,512}$", var.history_log_name))
    error_message = "history_log_name may only contain letters, digits, underscores, periods and hyphens (no slash, no URL-encoding)."
  }
}

variable "history_include_own_queries" {
  description = "Keep the exporter's own System Activity queries in the history stream (HISTORY_INCLUDE_OWN_QUERIES); left out by default, labelled looker_exporter=self when kept."
  type        = bool
  default     = false
}

variable "initial_lookback_minutes" {
  description = "On the very first run of an instance (no cursor in the state bucket yet), export the events of the last N minutes (INITIAL_LOOKBACK_MINUTES); the default of every instance without its own initial_lookback_minutes."
  type        = number
  default     = 10

  validation {
    condition     = var.initial_lookback_minutes >= 1 && var.initial_lookback_minutes <= 43200
    error_message = "initial_lookback_minutes must be between 1 and 43200 (30 days)."
  }
}

variable "settle_seconds" {
  description = "Events newer than this many seconds are left for the next run, so that late-arriving System Activity rows are not skipped (SETTLE_SECONDS)."
  type        = number
  default     = 60

  validation {
    condition     = var.settle_seconds >= 0 && var.settle_seconds <= 3600
    error_message = "settle_seconds must be between 0 and 3600."
  }
}

variable "run_budget_seconds" {
  description = "Time budget of one run (RUN_BUDGET_SECONDS): after it the exporter starts no new page and commits its cursor. The function timeout is this plus 60 seconds."
  type        = number
  default     = 480

  validation {
    # Event-driven 2nd gen functions time out after at most 540 seconds.
    condition     = var.run_budget_seconds >= 60 && var.run_budget_seconds <= 480
    error_message = "run_budget_seconds must be between 60 and 480 (the function timeout, budget + 60 s, may not exceed 540 s for an event-driven function)."
  }
}

variable "max_message_age_seconds" {
  description = "A trigger message older than this is acknowledged and dropped with a WARNING in the function's log instead of being retried again (MAX_MESSAGE_AGE_SECONDS). The next scheduled run catches up from the cursor."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_message_age_seconds >= 600 && var.max_message_age_seconds <= 86400
    error_message = "max_message_age_seconds must be between 600 (one tick) and 86400 (one day)."
  }
}

# ---------------------------------------------------------------------------
# Network: reaching a private Looker, a static source address (network.tf)
# ---------------------------------------------------------------------------

variable "vpc_egress" {
  description = <<-EOT
    Send the functions' traffic through a VPC network (docs/networking.md); null (the default): straight to the
    internet, from Google's shared addresses. Either Direct VPC egress, with subnetwork (a name in project_id and
    region, or projects/HOST_PROJECT/regions/REGION/subnetworks/NAME for a Shared VPC), network (its network; required
    with static_ip) and optional network_tags; or a Serverless VPC Access connector that already exists, with
    connector (a name in project_id and region, or projects/PROJECT/locations/REGION/connectors/NAME). egress is what
    goes through the VPC: PRIVATE_RANGES_ONLY (the default: a private Looker's internal address) or ALL_TRAFFIC; each
    instance may differ (looker_instances.*.vpc_egress). static_ip (Direct VPC only): reserve an external address, a
    Cloud Router and a Cloud NAT that serves only this subnetwork with that address, and send all traffic through the
    VPC by default, so that Looker sees one source address to allowlist (output egress_ip). With ALL_TRAFFIC and no
    static_ip the subnetwork must have Private Google Access (Secret Manager, Cloud Logging and Cloud Storage are
    reached through it): the plan reads the subnetwork and stops with the command that turns it on, unless
    check_private_google_access = false (for a deployer who may not read a Shared VPC host project's subnetworks).
  EOT
  type = object({
    network                     = optional(string)
    subnetwork                  = optional(string)
    network_tags                = optional(list(string), [])
    connector                   = optional(string)
    egress                      = optional(string)
    static_ip                   = optional(bool, false)
    check_private_google_access = optional(bool, true)
  })
  default = null

  validation {
    # A function cannot use both: https://docs.cloud.google.com/functions/docs/running/direct-vpc (Limitations).
    condition     = var.vpc_egress == null || (try(var.vpc_egress.subnetwork, null) != null) != (try(var.vpc_egress.connector, null) != null)
    error_message = "vpc_egress needs exactly one of subnetwork (Direct VPC egress) and connector (Serverless VPC Access): a function cannot use both."
  }

  validation {
    condition     = var.vpc_egress == null || contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC", "unset"], coalesce(try(var.vpc_egress.egress, null), "unset"))
    error_message = "vpc_egress.egress must be PRIVATE_RANGES_ONLY or ALL_TRAFFIC, or left unset."
  }

  validation {
    condition     = var.vpc_egress == null || can(regex("^(unset|[a-z]([-a-z0-9]{0,61}[a-z0-9])?|projects/[a-z][-a-z0-9.:]*[a-z0-9]/regions/[a-z]+-[a-z]+[0-9]+/subnetworks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?)$", coalesce(try(var.vpc_egress.subnetwork, null), "unset")))
    error_message = "vpc_egress.subnetwork must be a subnetwork name, or projects/HOST_PROJECT/regions/REGION/subnetworks/NAME."
  }

  validation {
    condition     = var.vpc_egress == null || can(regex("^(unset|[a-z]([-a-z0-9]{0,23}[a-z0-9])?|projects/[a-z][-a-z0-9.:]*[a-z0-9]/locations/[a-z]+-[a-z]+[0-9]+/connectors/[a-z]([-a-z0-9]{0,23}[a-z0-9])?)$", coalesce(try(var.vpc_egress.connector, null), "unset")))
    error_message = "vpc_egress.connector must be a connector name, or projects/PROJECT/locations/REGION/connectors/NAME."
  }

  validation {
    # The Cloud Router belongs to the network; the Cloud NAT serves the subnetwork the functions take addresses from.
    condition     = var.vpc_egress == null || !try(var.vpc_egress.static_ip, false) || (try(var.vpc_egress.subnetwork, null) != null && try(var.vpc_egress.network, null) != null)
    error_message = "vpc_egress.static_ip needs Direct VPC egress with both network and subnetwork: the Cloud Router belongs to the network, the Cloud NAT serves the subnetwork."
  }

  validation {
    condition     = var.vpc_egress == null || !try(var.vpc_egress.static_ip, false) || try(var.vpc_egress.egress, null) != "PRIVATE_RANGES_ONLY"
    error_message = "vpc_egress.static_ip sends all traffic through the NAT: leave egress unset (it becomes ALL_TRAFFIC). An instance that must not use the address sets its own looker_instances vpc_egress."
  }

  validation {
    condition     = var.vpc_egress == null || length(coalesce(try(var.vpc_egress.network_tags, null), [])) == 0 || try(var.vpc_egress.subnetwork, null) != null
    error_message = "vpc_egress.network_tags apply to Direct VPC egress only (with subnetwork)."
  }
}

# ---------------------------------------------------------------------------
# Function sizing
# ---------------------------------------------------------------------------

variable "python_runtime" {
  description = "Cloud Run functions Python runtime."
  type        = string
  default     = "python312"

  validation {
    condition     = contains(["python311", "python312", "python313"], var.python_runtime)
    error_message = "python_runtime must be one of python311, python312, python313."
  }
}

variable "source_archive_path" {
  description = "Where the function's zip is written before the upload. Unset: .build/function-source.zip in the root configuration (path.root), where the root in terraform/ always kept it. Give each call its own path when one configuration calls this module more than once."
  type        = string
  default     = null

  validation {
    condition     = var.source_archive_path == null || can(regex("\\.zip$", coalesce(var.source_archive_path, "x")))
    error_message = "source_archive_path must end in .zip, or be left unset."
  }
}

variable "function_memory" {
  description = "Memory of the function instance (available_memory), e.g. 256M, 512M, 1G."
  type        = string
  default     = "256M"

  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.function_memory))
    error_message = "function_memory must be a size such as 256M, 512M or 1G."
  }
}

# ---------------------------------------------------------------------------
# One apply on a new project (iam.tf, alerts.tf)
# ---------------------------------------------------------------------------

variable "iam_propagation_seconds" {
  # https://cloud.google.com/iam/docs/access-change-propagation: most changes take
  # effect within about 2 minutes, some can take 7 minutes or longer; the
  # default covers the usual case and stays short.
  description = "How long the first apply waits after the build account's and the service agents' grants before it creates the functions. Most IAM changes take effect within about 2 minutes, some can take 7 minutes or longer (https://cloud.google.com/iam/docs/access-change-propagation): raise it if an apply fails on a permission just granted (e.g. a Cloud Build or Eventarc permission error)."
  type        = number
  default     = 120

  validation {
    condition     = var.iam_propagation_seconds >= 0 && var.iam_propagation_seconds <= 900 && floor(var.iam_propagation_seconds) == var.iam_propagation_seconds
    error_message = "iam_propagation_seconds must be a whole number of seconds between 0 and 900."
  }
}

variable "metric_propagation_seconds" {
  description = "How long the apply waits after creating log-based metrics before it creates the alert policies that read them: Cloud Monitoring answers 404 for a new metric for up to 10 minutes. Waits again only when the set of metrics changes."
  type        = number
  default     = 300

  validation {
    condition     = var.metric_propagation_seconds >= 0 && var.metric_propagation_seconds <= 900 && floor(var.metric_propagation_seconds) == var.metric_propagation_seconds
    error_message = "metric_propagation_seconds must be a whole number of seconds between 0 and 900."
  }
}

# ---------------------------------------------------------------------------
# Long retention (retention.tf)
# ---------------------------------------------------------------------------

variable "enable_long_retention" {
  description = "Route the exported log to a dedicated log bucket kept for retention_days, and exclude it from the _Default bucket (so it is stored, and billed, once)."
  type        = bool
  default     = false
}

variable "retention_days" {
  description = "Retention of the dedicated log bucket, in days (when enable_long_retention). Storage beyond the first 30 days is billed by Cloud Logging."
  type        = number
  default     = 400

  validation {
    condition     = var.retention_days >= 1 && var.retention_days <= 3650 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days between 1 and 3650."
  }
}

variable "log_bucket_location" {
  description = "Location of the dedicated log bucket: global, or a region/multi-region such as us-central1, eu, us (data residency). A BigQuery linked dataset is created in the same location."
  type        = string
  default     = "global"

  validation {
    condition     = can(regex("^(global|[a-z]+|[a-z]+-[a-z]+[0-9]+)$", var.log_bucket_location))
    error_message = "log_bucket_location must be global, a multi-region such as eu or us, or a region such as us-central1."
  }
}

variable "lock_log_bucket" {
  description = "Lock the dedicated log bucket's retention: nobody can then delete the bucket or shorten its retention, nor delete entries before they expire. IRREVERSIBLE, and `terraform destroy` cannot remove a locked bucket."
  type        = bool
  default     = false
}

variable "enable_bigquery_linked_dataset" {
  description = "Upgrade the dedicated log bucket to Log Analytics (irreversible) and link a BigQuery dataset to it, so analysts can query the audit trail with SQL (read-only, no copy). Needs enable_long_retention."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Security signals and exporter health (alerts.tf)
# ---------------------------------------------------------------------------

variable "alerts" {
  description = <<-EOT
    Which log-based metrics and alert policies to create; each one can be switched on or off. Security signals (on the
    exported logs): login_failure_burst, role_changes, sudo_sessions, api_credentials, downloads (counts the query history:
    needs export_streams to include "history"), large_exports (experimental: matches no event Looker documents). Unset, a
    security signal is on when its log is exported and it is not experimental. Exporter health (on the functions' own
    log): exporter_lag, exporter_failures, exporter_no_success, on unless switched off. Switching one off removes its
    metric and its alert policy.
  EOT
  type = object({
    login_failure_burst = optional(bool)
    role_changes        = optional(bool)
    sudo_sessions       = optional(bool)
    api_credentials     = optional(bool)
    large_exports       = optional(bool)
    downloads           = optional(bool)
    exporter_lag        = optional(bool, true)
    exporter_failures   = optional(bool, true)
    exporter_no_success = optional(bool, true)
  })
  default = {}
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channels that every alert policy notifies, as full IDs: projects/PROJECT/notificationChannels/ID (create them in the console or with google_monitoring_notification_channel). Empty: incidents are only shown in the console."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[a-z0-9-]+/notificationChannels/[0-9]+$", c))])
    error_message = "notification_channels must be full IDs such as projects/my-project/notificationChannels/1234567890."
  }
}

variable "alert_window_seconds" {
  description = "Window of the security-signal alerts, in seconds: events are counted over this long. The exporter writes an event up to one schedule interval plus settle_seconds after it happened, so keep it well above that (default 30 min for a 10 min schedule)."
  type        = number
  default     = 1800

  validation {
    condition     = var.alert_window_seconds >= 600 && var.alert_window_seconds <= 86400 && var.alert_window_seconds % 60 == 0
    error_message = "alert_window_seconds must be a whole number of minutes between 600 (10 min) and 86400 (1 day)."
  }
}

variable "login_failure_threshold" {
  description = "Alert when more than this many login_failure events of one Looker host fall in one alert window."
  type        = number
  default     = 10

  validation {
    condition     = var.login_failure_threshold >= 0 && floor(var.login_failure_threshold) == var.login_failure_threshold
    error_message = "login_failure_threshold must be a whole number >= 0."
  }
}

variable "large_export_row_count" {
  description = "Experimental large_exports signal only: an export_query or download event with at least this many rows (attribute row_count) counts as a large data export. Looker documents no such event nor a row count, so the signal is off unless alerts.large_exports = true."
  type        = number
  default     = 100000

  validation {
    condition     = var.large_export_row_count >= 1 && var.large_export_row_count <= 999999999999 && floor(var.large_export_row_count) == var.large_export_row_count
    error_message = "large_export_row_count must be a whole number between 1 and 999999999999."
  }
}

variable "download_threshold" {
  description = "Alert when more than this many downloads (query history rows whose history.source is data-download-api, render_manager_cache or authenticated_download) of one Looker host fall in one alert window. Needs export_streams to include \"history\"."
  type        = number
  default     = 50

  validation {
    condition     = var.download_threshold >= 0 && floor(var.download_threshold) == var.download_threshold
    error_message = "download_threshold must be a whole number >= 0."
  }
}

variable "exporter_max_lag_seconds" {
  description = "Alert when an exporter falls behind by more than this many seconds: its reported lag (summary.lag_seconds) exceeds it, or it has had no successful run for this long."
  type        = number
  default     = 3600

  validation {
    # Cloud Monitoring accepts absence durations up to 23 h 30 min.
    condition     = var.exporter_max_lag_seconds >= 900 && var.exporter_max_lag_seconds <= 84600 && var.exporter_max_lag_seconds % 60 == 0
    error_message = "exporter_max_lag_seconds must be a whole number of minutes between 900 (15 min) and 84600 (23 h 30 min)."
  }
}

variable "exporter_failed_runs_threshold" {
  description = "Alert when more than this many runs of one exporter fail (\"Looker export failed\" at ERROR) within one hour. A failed run is retried, so one transient failure is normal."
  type        = number
  default     = 2

  validation {
    condition     = var.exporter_failed_runs_threshold >= 0 && floor(var.exporter_failed_runs_threshold) == var.exporter_failed_runs_threshold
    error_message = "exporter_failed_runs_threshold must be a whole number >= 0."
  }
}

# ---------------------------------------------------------------------------
# Dashboard (dashboard.tf)
# ---------------------------------------------------------------------------

variable "enable_dashboard" {
  description = "Create a Cloud Monitoring dashboard for this stack: exporter health (runs, events written, lag, Looker query calls) and the enabled security signals per Looker host. It keeps the run, lag, events-written and query-call metrics it shows even when their alerts are off."
  type        = bool
  default     = true
}
