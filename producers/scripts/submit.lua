-- submit.lua: one email into its thread's inbox, exactly once (`producers.submit.Submitter`).
--
-- KEYS: 1 index (Message-ID -> thread), 2 senders of that id (hash sender -> thread),
--       3 the thread's inbox, 4 its scheduled flag, 5 the pending-threads index,
--       6 the thread's participants (set of member digests)
-- ARGV: 1 thread id, 2 payload JSON, 3 TTL, 4 flag TTL, 5 now, 6 flag kind (queued|batch),
--       7 sender digest, 8 mode: new (own thread) | reply (thread found by references) |
--       collision (the id belongs to another sender: own thread, index left alone),
--       9 '1' when the id has the shape of one of our reply ids,
--       10 the sender's address member, 11 its domain member ('' when none may join by domain),
--       12 members an accepted email adds (space-separated), 13 the participants' TTL
-- Returns {status, scheduled, thread, reused}; status enqueued | duplicate | collision |
-- refused (a reply whose sender takes no part in the thread: the caller gives it its own).
local thread = ARGV[1]
local seen = redis.call('HGET', KEYS[2], ARGV[7])
local owner = redis.call('GET', KEYS[1])
if not seen and owner and ARGV[9] ~= '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  seen = owner  -- indexed by a producer that did not record senders: the same email
end
if seen then
  local schedule = false
  if seen == thread and redis.call('LLEN', KEYS[3]) > 0 then
    redis.call('ZADD', KEYS[5], 'NX', ARGV[5], thread)
    schedule = redis.call('SET', KEYS[4], ARGV[6] .. ':' .. ARGV[5], 'NX', 'EX', ARGV[4])
  end
  return {'duplicate', schedule and 1 or 0, seen, 0}
end
-- A thread from before participants were recorded has none: anyone citing it may join.
if ARGV[8] == 'reply' and redis.call('EXISTS', KEYS[6]) == 1
    and redis.call('SISMEMBER', KEYS[6], ARGV[10]) == 0
    and (ARGV[11] == '' or redis.call('SISMEMBER', KEYS[6], ARGV[11]) == 0) then
  return {'refused', 0, thread, 0}
end
if owner and ARGV[8] == 'new' then
  return {'collision', 0, owner, 1}
end
local reused = 0
if owner then
  reused = 1
else
  redis.call('SET', KEYS[1], thread, 'EX', ARGV[3])
end
redis.call('HSET', KEYS[2], ARGV[7], thread)
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
for member in string.gmatch(ARGV[12], '%S+') do redis.call('SADD', KEYS[6], member) end
redis.call('EXPIRE', KEYS[6], ARGV[13])
redis.call('ZADD', KEYS[5], 'NX', ARGV[5], thread)
local schedule = redis.call('SET', KEYS[4], ARGV[6] .. ':' .. ARGV[5], 'NX', 'EX', ARGV[4])
return {'enqueued', schedule and 1 or 0, thread, reused}
