"""The `triage` command line and the local stack it can start."""
