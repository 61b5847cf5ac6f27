-- bounce.lua: a delivery report of one of our replies marks its thread (`producers.submit`).
--
-- KEYS: 1 thread meta, 2 threads awaiting the customer, 3 senders of the report's Message-ID
-- ARGV: 1 thread id, 2 status code, 3 bounced Message-ID, 4 diagnostic, 5 now,
--       6 sender digest, 7 TTL, 8 the thread status to set (reply_bounced),
--       9 the status of a thread waiting for the customer (awaiting_customer)
-- Returns reply_bounced | duplicate | unknown (no such thread any more).
-- The bounce is recorded on the thread either way; its status changes only while the thread
-- waits for the customer: a late report (a retry queue that gave up after days) must not turn a
-- decided thread back into an undecided one.
if redis.call('HEXISTS', KEYS[3], ARGV[6]) == 1 then return 'duplicate' end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
redis.call('HSET', KEYS[1], 'bounce_status', ARGV[2], 'bounced_message_id', ARGV[3],
  'bounce_diagnostic', ARGV[4], 'bounced_at', ARGV[5])
if redis.call('HGET', KEYS[1], 'status') == ARGV[9] then
  redis.call('HSET', KEYS[1], 'status', ARGV[8])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[6], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[7])
return 'reply_bounced'
