-- release_batch_hold.lua: a thread held for a Message Batch goes to the normal queue.
--
-- KEYS[1] scheduled     string the thread's scheduled flag ('batch:<t>' while held)
-- ARGV[1] now           unix time
-- ARGV[2] flag_seconds  TTL of the 'queued:<now>' flag
-- Returns 1 (the caller publishes the drain task).
local now, flag_seconds = ARGV[1], ARGV[2]
redis.call('SET', KEYS[1], 'queued:' .. now, 'EX', flag_seconds)
return 1
