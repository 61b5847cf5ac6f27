-- review.lua: a person's verdict on a thread's decision (accept or correct), applied atomically.
--
-- KEYS[1] meta       hash   thread meta
-- KEYS[2] events     stream decision events
-- KEYS[3] review     zset   the review lane
-- KEYS[4] idle       zset   compaction queue (a reviewed thread is classified and idle)
-- KEYS[5] labelled   stream labelled examples (corrections and confirmations)
-- ARGV[1] one JSON object:
--   thread_id, expected_version (the meta version the reviewer saw: the fence),
--   allowed ([statuses the thread may be in]), meta ({field: value} to write),
--   event ({type, category, payload}), example (JSON string), now, events_maxlen
-- Returns {'ok', version} or {'stale', version} or {'status', current status}.
local c = cjson.decode(ARGV[1])
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if tonumber(version) ~= tonumber(c['expected_version']) then return {'stale', version} end
local status = redis.call('HGET', KEYS[1], 'status') or ''
local allowed = false
for _, name in ipairs(c['allowed']) do
  if name == status then allowed = true end
end
if not allowed then return {'status', status} end
local fields = {}
for name, value in pairs(c['meta']) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[1], unpack(fields))
local e = c['event']
redis.call('XADD', KEYS[2], 'MAXLEN', '~', c['events_maxlen'], '*',
  'type', e['type'], 'thread_id', c['thread_id'], 'category', e['category'], 'payload', e['payload'])
redis.call('ZREM', KEYS[3], c['thread_id'])
redis.call('ZADD', KEYS[4], c['now'], c['thread_id'])
redis.call('XADD', KEYS[5], '*', 'thread_id', c['thread_id'], 'example', c['example'])
return {'ok', version}
