"""`triage reprocess`: named, side-effect-free triage runs under another configuration
(docs/reprocessing.md).

Modules, in the order a run uses them: `plan` (what a run covers: stored threads with filters, or
a backlog PATH, written to the run's records), `estimate` (emails, calls and cost before anything
is spent), `execute` (the calls: live under the fleet rate limiter, or Message Batches; resumable),
`diff` (what changed, against live or another run), `report` (Markdown, JSON, the PNG change
matrix), `apply` (promote changed decisions to live threads as `reclassified` events). The run's
records and the shadow run live in `worker.state.runs`, the decision core in
`worker.decide.rerun`, the shadow consumer in `worker.shadow`.
"""
