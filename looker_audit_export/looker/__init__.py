"""Looker's side: ``client`` (the SDK session, retries, what failures mean), ``explores`` (the fields of each
explore), ``reader`` (pages, attributes, users, what the instance is like, times in UTC)."""
