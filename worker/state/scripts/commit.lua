-- commit.lua: apply one decision to a thread atomically, fenced by the version read before the
-- Claude call. Built by `worker.state.commit.script_call` from a typed `Commit`.
--
-- KEYS[1]  meta            hash   thread meta
-- KEYS[2]  messages        list   the Claude messages array
-- KEYS[3]  applied         set    email ids already applied
-- KEYS[4]  inbox           list   pending email payloads
-- KEYS[5]  scheduled       string the thread's scheduled flag
-- KEYS[6]  events          stream decision events for downstream systems
-- KEYS[7]  replies_pending hash   reply_id -> reply task JSON (decided, not yet sent)
-- KEYS[8]  threads         zset   thread_id -> last update
-- KEYS[9]  reply_index     string Message-ID of our question -> thread id ('-' key when none)
-- KEYS[10] dead_letters    stream
-- KEYS[11] pending         zset   threads with unprocessed email
-- KEYS[12] awaiting        zset   threads waiting for the customer
-- KEYS[13] ledger_thread   hash   the thread's usage ledger
-- KEYS[14] idle            zset   threads classified or escalated, since when (compaction queue)
-- KEYS[15] review          zset   threads in the review lane (status needs_review), since when
-- KEYS[16..] ledger days   hash   one per UTC day a charge falls on
-- ARGV[1]  one JSON object:
--   thread_id        string
--   expected_version int     the fencing token (version the decision was based on)
--   consumed         int     inbox entries the decision consumed (the head of the inbox)
--   email_ids        [str]   ids applied by this decision (rejected as 'duplicate' if any is)
--   turns            [str]   JSON turns appended to the messages array
--   meta             {str: str} fields written to the meta hash
--   previous_status  string  status before this decision ('' when unknown)
--   charges          [[key index, field, amount]] ledger HINCRBYs, written even when rejected
--   event            {type, category, payload} or null
--   reply            {reply_id, payload} or null
--   dead_letters     [[reason, payload]]
--   ttl              int     seconds the thread's keys live after this commit
--   now              string  unix time
--   events_maxlen    int     approximate cap of the events stream
-- Returns {status ('ok', 'stale' or 'duplicate'), version, inbox entries remaining}.
--
-- Everything is decoded and checked before the first write: Redis does not roll back a script
-- that fails half-way, so no error may be possible once writing has started.
local c = cjson.decode(ARGV[1])
local thread_id = c['thread_id']
local ids, turns, meta, letters, charges = c['email_ids'], c['turns'], c['meta'], c['dead_letters'], c['charges']
local event, reply = c['event'], c['reply']
local consumed, ttl, now = tonumber(c['consumed']), tonumber(c['ttl']), c['now']

-- The calls were billed whatever happens to the decision: the ledger is written first.
for _, charge in ipairs(charges) do redis.call('HINCRBY', KEYS[charge[1]], charge[2], charge[3]) end
if #charges > 0 then redis.call('EXPIRE', KEYS[13], ttl) end

local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(c['expected_version']) then return {'stale', version, 0} end
for first = 1, #ids, 1000 do  -- chunked: unpack() is bounded by Lua's C stack
  local found = redis.call('SMISMEMBER', KEYS[3], unpack(ids, first, math.min(first + 999, #ids)))
  for _, seen in ipairs(found) do
    if seen == 1 then return {'duplicate', version, 0} end
  end
end

if #turns > 0 then redis.call('RPUSH', KEYS[2], unpack(turns)) end
for first = 1, #ids, 1000 do
  redis.call('SADD', KEYS[3], unpack(ids, first, math.min(first + 999, #ids)))
end
local remaining = redis.call('LLEN', KEYS[4]) - consumed
if remaining > 0 then
  if consumed > 0 then redis.call('LTRIM', KEYS[4], consumed, -1) end
  redis.call('EXPIRE', KEYS[4], ttl)
else
  remaining = 0
  redis.call('DEL', KEYS[4])
end
version = version + 1
local fields = {'version', version, 'updated_at', now, 'drain_attempts', 0}
if version == 1 then
  fields[#fields + 1] = 'created_at'
  fields[#fields + 1] = now
end
for name, value in pairs(meta) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[1], unpack(fields))
if meta['status'] == 'awaiting_customer' then
  redis.call('ZADD', KEYS[12], now, thread_id)
elseif meta['status'] and c['previous_status'] == 'awaiting_customer' then
  redis.call('ZREM', KEYS[12], thread_id)
end
if meta['status'] == 'classified' or meta['status'] == 'escalated' then
  redis.call('ZADD', KEYS[14], now, thread_id)
elseif meta['status'] then
  redis.call('ZREM', KEYS[14], thread_id)
end
if meta['status'] == 'needs_review' then
  redis.call('ZADD', KEYS[15], 'NX', now, thread_id)
elseif meta['status'] then
  redis.call('ZREM', KEYS[15], thread_id)
end
if type(event) == 'table' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', c['events_maxlen'], '*',
    'type', event['type'], 'thread_id', thread_id, 'category', event['category'],
    'payload', event['payload'])
end
if type(reply) == 'table' then
  redis.call('HSET', KEYS[7], reply['reply_id'], reply['payload'])
  redis.call('SET', KEYS[9], thread_id, 'EX', ttl)
end
for _, letter in ipairs(letters) do
  redis.call('XADD', KEYS[10], '*', 'reason', letter[1], 'thread_id', thread_id, 'payload', letter[2])
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
redis.call('ZADD', KEYS[8], now, thread_id)
if remaining == 0 then
  redis.call('DEL', KEYS[5])
  redis.call('ZREM', KEYS[11], thread_id)
end
return {'ok', version, remaining}
