-- claim.lua: lease the most overdue thread of one subscription to a lane, with the head of its
-- list (the only delivery of a thread that may be in flight). Called by
-- `worker.deliver.store.DeliveryQueue.claim`.
--
-- KEYS[1]  due       zset  thread_id -> when its head is due (a lease moves it to the lease end)
-- KEYS[2]  leases    hash  thread_id -> token of the lane that holds it
-- KEYS[3]  attempts  hash  event id -> failed attempts so far
-- ARGV[1]  now       unix time
-- ARGV[2]  lease     seconds the lane may take before another lane takes the thread over
-- ARGV[3]  token     the claiming lane's token (checked by settle.lua)
-- ARGV[4]  prefix    key prefix of the thread lists
-- Returns {thread_id, item JSON, attempts} or, when nothing is due, {'', next due time or ''}.
--
-- A lane that dies keeps its lease until it ends: the thread is then due again and the next
-- claim takes it over (at least once: the receiver drops the repeat by its event id).
local now, lease, token, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]

for _ = 1, 20 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
  if #due == 0 then
    local upcoming = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {'', upcoming[2] or ''}
  end
  local thread = due[1]
  local head = redis.call('LINDEX', prefix .. thread, 0)
  if head then
    redis.call('ZADD', KEYS[1], now + lease, thread)
    redis.call('HSET', KEYS[2], thread, token)
    local id = cjson.decode(head)['id']
    return {thread, head, redis.call('HGET', KEYS[3], id) or '0'}
  end
  -- nothing left to deliver (a purged list): forget the thread
  redis.call('ZREM', KEYS[1], thread)
  redis.call('HDEL', KEYS[2], thread)
end
return {'', ARGV[1]}
