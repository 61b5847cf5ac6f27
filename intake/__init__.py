"""Ways in for live mail: the HTTP intake (`triage serve`), provider webhooks, the public Celery
task `triage.ingest_email` and the IMAP watcher (`triage imap`).

Every way in hands the producers an item (raw MIME or one JSON-schema record) and takes back their
outcome: parsing, threading, dedupe, submitting and dead-lettering are `producers.enqueue`'s, never
done twice. Sits above `producers` and `worker` (it composes the worker's Celery app with the
ingest task) and below the CLI.
"""
