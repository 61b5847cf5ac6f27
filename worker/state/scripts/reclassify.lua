-- reclassify.lua: promote a reprocessing run's decision to a live thread, atomically.
--
-- KEYS[1] meta    hash   thread meta
-- KEYS[2] events  stream decision events
-- KEYS[3] review  zset   the review lane
-- KEYS[4] idle    zset   compaction queue (a classified thread is idle)
-- ARGV[1] one JSON object:
--   thread_id, expected_version (the version the run decided on: the fence),
--   expected_category (the category the caller saw, "" for none), allowed ([statuses]),
--   meta ({field: value} to write), event ({type, category, payload}), review (true: the
--   decision waits for a person), now, events_maxlen
-- Returns {'ok', version}, {'stale', version} (the thread moved on since the run),
-- {'status', status} (not a classified thread) or {'changed', category} (changed meanwhile).
local c = cjson.decode(ARGV[1])
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return {'stale', '0'} end
if tonumber(version) ~= tonumber(c['expected_version']) then return {'stale', version} end
local status = redis.call('HGET', KEYS[1], 'status') or ''
local allowed = false
for _, name in ipairs(c['allowed']) do
  if name == status then allowed = true end
end
if not allowed then return {'status', status} end
local category = redis.call('HGET', KEYS[1], 'category') or ''
if category ~= c['expected_category'] then return {'changed', category} end
local fields = {}
for name, value in pairs(c['meta']) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[1], unpack(fields))
local e = c['event']
redis.call('XADD', KEYS[2], 'MAXLEN', '~', c['events_maxlen'], '*',
  'type', e['type'], 'thread_id', c['thread_id'], 'category', e['category'], 'payload', e['payload'])
if c['review'] then
  redis.call('ZADD', KEYS[3], c['now'], c['thread_id'])
else
  redis.call('ZREM', KEYS[3], c['thread_id'])
end
redis.call('ZADD', KEYS[4], 'NX', c['now'], c['thread_id'])
return {'ok', version}
