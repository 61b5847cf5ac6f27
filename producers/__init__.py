"""Email producers: parse, thread, dedupe and enqueue inbound mail."""
