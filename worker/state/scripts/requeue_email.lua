-- requeue_email.lua: a replayed dead letter goes back into its thread's inbox.
--
-- KEYS[1] inbox      list   the thread's pending emails
-- KEYS[2] scheduled  string the thread's scheduled flag
-- KEYS[3] pending    zset   threads with unprocessed email
-- ARGV[1] payload       the email payload (JSON)
-- ARGV[2] now           unix time
-- ARGV[3] ttl           seconds the inbox lives
-- ARGV[4] thread_id
-- ARGV[5] flag_seconds  TTL of the 'queued:<now>' flag
-- Returns 1 when this call set the flag (the caller publishes a drain task), else 0.
local payload, now, ttl, thread_id, flag_seconds = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('RPUSH', KEYS[1], payload)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[3], 'NX', now, thread_id)
if redis.call('SET', KEYS[2], 'queued:' .. now, 'NX', 'EX', flag_seconds) then return 1 end
return 0
