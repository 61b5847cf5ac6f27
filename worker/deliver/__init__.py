"""Outbound webhooks: every event of `triage:events` POSTed, signed, to its subscriptions."""
