"""Local emulators of the Google Cloud and Looker APIs used by the exporter."""
