-- settle.lua: record how one delivery attempt ended and schedule the thread's next step.
-- Called by `worker.deliver.store.DeliveryQueue.settle`.
--
-- KEYS[1]  due           zset    thread_id -> when its head is due
-- KEYS[2]  leases        hash    thread_id -> token of the lane that holds it
-- KEYS[3]  attempts      hash    event id -> failed attempts so far
-- KEYS[4]  thread        list    the thread's deliveries, oldest first
-- KEYS[5]  dead_letters  stream  triage:dlq
-- ARGV[1]  thread_id
-- ARGV[2]  token      the lane's lease token
-- ARGV[3]  item       the delivery's JSON exactly as claimed
-- ARGV[4]  event_id
-- ARGV[5]  outcome    'delivered', 'retry' or 'dead'
-- ARGV[6]  now        unix time
-- ARGV[7]  when       retry: when to try again; delivered/dead: the renewed lease end if the
--                     lane goes on with the thread's next delivery, '' if it stops here
-- ARGV[8]  attempts   failed attempts so far, this one included (retry)
-- ARGV[9]  reason     dead-letter reason (dead)
-- ARGV[10] letter     dead-letter payload JSON (dead)
-- Returns {'next', item, attempts} (the lane goes on, still holding the thread), {'done'}, or
-- {'stale'} when the lease had passed to another lane (a delivered or dead item is removed all
-- the same, so it is not sent again; the holder schedules the rest).
local thread, token, item, id, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, later = ARGV[6], ARGV[7]

local held = redis.call('HGET', KEYS[2], thread) == token
if outcome ~= 'retry' then
  local removed = redis.call('LREM', KEYS[4], 1, item)
  redis.call('HDEL', KEYS[3], id)
  if outcome == 'dead' and removed > 0 then
    redis.call('XADD', KEYS[5], '*', 'reason', ARGV[9], 'thread_id', thread, 'payload', ARGV[10])
  end
end
if not held then
  return {'stale'}
end
if outcome == 'retry' then
  redis.call('HSET', KEYS[3], id, ARGV[8])
  redis.call('ZADD', KEYS[1], later, thread)
  redis.call('HDEL', KEYS[2], thread)
  return {'done'}
end
local following = redis.call('LINDEX', KEYS[4], 0)
if not following then
  redis.call('ZREM', KEYS[1], thread)
  redis.call('HDEL', KEYS[2], thread)
  return {'done'}
end
if later == '' then
  redis.call('ZADD', KEYS[1], now, thread)
  redis.call('HDEL', KEYS[2], thread)
  return {'done'}
end
redis.call('ZADD', KEYS[1], later, thread)
local next_id = cjson.decode(following)['id']
return {'next', following, redis.call('HGET', KEYS[3], next_id) or '0'}
