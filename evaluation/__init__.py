"""`triage eval`: triage quality measured on labelled cases (docs/evaluation.md).

Modules, in the order a run uses them: `dataset` (JSONL cases -> the producers' parsed emails),
`csv_import` (helpdesk exports -> cases), `case_run` (one case through the worker's decision path,
turn by turn), `runner` (many cases, live with a thread pool or through the Message Batches API),
`metrics` (pure figures from the case records), `compare` (two reports, McNemar), `report`
(terminal table, report.md, report.json), `plots` (PNG), `progress` (the terminal line),
`command` (the click command).
"""
