"""Thread state in Redis: snapshot, the fenced commit (Lua), usage ledger and prices."""
