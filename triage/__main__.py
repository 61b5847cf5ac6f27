"""`python -m triage` is the `triage` command."""

from triage.main import main

main()
