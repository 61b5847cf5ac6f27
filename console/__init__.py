"""The web console (`triage console`, docs/console.md): server-rendered pages over the thread
state, the review lane, dead letters and reprocessing runs, for people.

Modules: `app` (the Starlette app and its routes), `web` (identity, CSRF, refusals, rendering),
`auth` (users, tokens, sessions, CSRF tokens), `audit` (every action logged and kept),
`pages` (what each page reads), `actions` (what each form changes), `overview`, `threads`,
`reports` (what they read, mostly pure), `charts` (inline SVG), `server` (uvicorn). It reads
worker state through `worker.state` and never restores a packed thread.
"""
