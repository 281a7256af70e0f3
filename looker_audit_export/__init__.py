"""Export Looker System Activity to Cloud Logging as GCP-style audit log entries."""
