"""Observability: Prometheus counters and the scrape-time gauges server."""
