-- requeue.lua: put a dead-lettered delivery back at the head of its thread's list (before the
-- thread's later events still waiting), with a fresh attempt budget. Called by
-- `worker.deliver.store.DeliveryQueue.requeue` (`triage webhooks replay`, `triage dlq replay`).
--
-- KEYS[1]  due       zset  thread_id -> when its head is due
-- KEYS[2]  leases    hash  thread_id -> token of the lane that holds it
-- KEYS[3]  attempts  hash  event id -> failed attempts so far
-- KEYS[4]  thread    list  the thread's deliveries, oldest first
-- ARGV[1]  thread_id
-- ARGV[2]  item      the delivery's JSON
-- ARGV[3]  event_id
-- ARGV[4]  now       unix time
-- Returns 1, or 0 when that delivery is queued already (a replay of a replay).
local thread, item, id, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

for _, queued in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do
  if cjson.decode(queued)['id'] == id then
    return 0
  end
end
redis.call('LPUSH', KEYS[4], item)
redis.call('HDEL', KEYS[3], id)
if redis.call('HEXISTS', KEYS[2], thread) == 0 then
  -- due now (or sooner than a retry it waited for); a lane holding the thread goes on with it
  redis.call('ZADD', KEYS[1], 'LT', now, thread)
end
return 1
