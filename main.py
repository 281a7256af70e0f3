"""Cloud Function entry point: Cloud Scheduler -> Pub/Sub -> ``export_system_activity``."""

import functions_framework
from cloudevents.http.event import CloudEvent

from looker_audit_export import function, logs

logs.configure()


@functions_framework.cloud_event
def export_system_activity(cloud_event: CloudEvent) -> None:
    """Export the Looker System Activity events that are new since the last run to Cloud Logging."""
    function.handle_tick(cloud_event["time"], cloud_event.data)
