"""Deciding: drain a thread's inbox into one turn, call Claude, parse the decision."""
