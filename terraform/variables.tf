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
  description = "Prefix of every resource name (function, topic, job, service accounts, secret, buckets). Change it to deploy a second exporter in the same project."
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

variable "looker_base_url" {
  description = "Base URL of the Looker instance API host, e.g. https://mycompany.cloud.looker.com (LOOKER_BASE_URL). The API credentials are NOT a variable: they go into Secret Manager with the command from the `secret_add_version_command` output."
  type        = string

  validation {
    condition     = can(regex("^https://[^/?#\\s]+(:[0-9]+)?/?$", var.looker_base_url))
    error_message = "looker_base_url must be an https:// URL with a host and no path, e.g. https://mycompany.cloud.looker.com."
  }
}

variable "looker_verify_ssl" {
  description = "Verify the Looker TLS certificate (LOOKER_VERIFY_SSL). Only disable for a private instance with a self-signed certificate."
  type        = bool
  default     = true
}

variable "looker_timeout_seconds" {
  description = "Timeout of one Looker API call, in seconds (LOOKER_TIMEOUT_SECONDS)."
  type        = number
  default     = 120

  validation {
    condition     = var.looker_timeout_seconds >= 10 && var.looker_timeout_seconds <= 300
    error_message = "looker_timeout_seconds must be between 10 and 300."
  }
}

variable "page_size" {
  description = "Number of System Activity events fetched per Looker query (PAGE_SIZE)."
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
  description = "Cron schedule (UTC) of the Cloud Scheduler job that triggers an export run."
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

variable "initial_lookback_minutes" {
  description = "On the very first run (no cursor in the state bucket yet), export the events of the last N minutes (INITIAL_LOOKBACK_MINUTES)."
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

variable "function_memory" {
  description = "Memory of the function instance (available_memory), e.g. 256M, 512M, 1G."
  type        = string
  default     = "256M"

  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.function_memory))
    error_message = "function_memory must be a size such as 256M, 512M or 1G."
  }
}
