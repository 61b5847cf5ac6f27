"""Replies: render the question as an email, guard what it may say, deliver it exactly once."""
