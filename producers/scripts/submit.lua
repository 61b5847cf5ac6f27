-- submit.lua: one email into its thread's inbox, exactly once (`producers.submit.Submitter`).
--
-- KEYS: 1 index (Message-ID -> thread), 2 senders of that id (hash sender -> thread),
--       3 the thread's inbox, 4 its scheduled flag, 5 the pending-threads index,
--       6 the thread's participants (member digests, space-separated), 7 the thread's meta
-- ARGV: 1 thread id, 2 payload JSON, 3 TTL, 4 flag TTL, 5 now, 6 flag kind (queued|batch),
--       7 sender digest, 8 mode: new (own thread) | reply (thread found by references) |
--       collision (the id belongs to another sender: own thread, index left alone),
--       9 '1' when the id has the shape of one of our reply ids,
--       10 the sender's address member, 11 its domain member ('' when none may join by domain),
--       12 members an accepted email adds (space-separated), 13 the participants' TTL,
--       14 the member a question would go to when not the sender (''), 15 its domain member (''),
--       16 the address a question would go to, lower-case (a thread without participants
--       admits only its customer)
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
local participants = redis.call('GET', KEYS[6])
local known = ' ' .. (participants or '') .. ' '
local function listed(member)
  return member ~= '' and string.find(known, ' ' .. member .. ' ', 1, true) ~= nil
end
local function takes_part(address, domain)
  return listed(address) or listed(domain)
end
if ARGV[8] == 'reply' then
  local joins
  if participants then
    -- the sender, and whoever a question about this email would go to, take part
    joins = takes_part(ARGV[10], ARGV[11]) and (ARGV[14] == '' or takes_part(ARGV[14], ARGV[15]))
  else
    -- no participants (a thread from before they were recorded, or they expired): fail closed
    -- but for the thread's customer, who then starts its participants
    local customer = redis.call('HGET', KEYS[7], 'customer')
    joins = ARGV[16] ~= '' and customer ~= false and string.lower(customer) == ARGV[16]
  end
  if not joins then return {'refused', 0, thread, 0} end
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
local grown = participants or ''
for member in string.gmatch(ARGV[12], '%S+') do
  if not listed(member) and #grown < 4096 then  -- bounded: a thread's few addresses and domains
    grown = (grown == '' and member) or (grown .. ' ' .. member)
    known = known .. member .. ' '
  end
end
if grown ~= '' then redis.call('SET', KEYS[6], grown, 'EX', ARGV[13]) end
redis.call('ZADD', KEYS[5], 'NX', ARGV[5], thread)
local schedule = redis.call('SET', KEYS[4], ARGV[6] .. ':' .. ARGV[5], 'NX', 'EX', ARGV[4])
return {'enqueued', schedule and 1 or 0, thread, reused}
