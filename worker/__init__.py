"""Celery worker: thread state in Redis, one Claude call per decision."""
