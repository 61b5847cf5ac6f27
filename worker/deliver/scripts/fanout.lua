-- fanout.lua: move one subscription's new events from the events stream into per-thread delivery
-- lists, in one step with the subscription's cursor. The cursor is the consumer group's
-- last-delivered id (XREADGROUP ... NOACK: nothing is left pending, nothing is read twice).
-- Called by `worker.deliver.store.DeliveryQueue.fan_out`.
--
-- KEYS[1]  events  stream  decision events (fields type, thread_id, category, payload)
-- KEYS[2]  due     zset    thread_id -> when the head of its list is due
-- ARGV[1]  group   the subscription's consumer group. Created at '$' when the subscription is
--                  first served; missing here means the stream was deleted since, so it is
--                  created again at '0' (every entry of the new stream is new).
-- ARGV[2]  count   entries to read at most
-- ARGV[3]  now     unix time: when a thread that had nothing queued becomes due
-- ARGV[4]  types   wanted event types, comma-separated with a comma at both ends (',a,b,')
-- ARGV[5]  prefix  key prefix of the thread lists (the thread id is appended here, since the
--                  threads are known only once read; Redis Cluster is not supported anyway)
-- Returns {entries read, deliveries queued, last id read ('' when none)}.
--
-- A thread already in `due` keeps its score (its head is retrying, or a lane holds it): its new
-- event waits behind the earlier ones, which is what keeps a thread's events in order.
local group, count, now, types, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local reply = redis.pcall('XREADGROUP', 'GROUP', group, 'fanout', 'COUNT', count, 'NOACK',
  'STREAMS', KEYS[1], '>')
if type(reply) == 'table' and reply['err'] then
  if string.find(reply['err'], 'NOGROUP', 1, true) then
    redis.call('XGROUP', 'CREATE', KEYS[1], group, '0', 'MKSTREAM')
    return {0, 0, ''}
  end
  return redis.error_reply(reply['err'])
end
if not reply then
  return {0, 0, ''}
end

local entries = reply[1][2]
local queued = 0
local last = ''
for _, entry in ipairs(entries) do
  local id, flat = entry[1], entry[2]
  local fields = {}
  for i = 1, #flat, 2 do
    fields[flat[i]] = flat[i + 1]
  end
  last = id
  local kind = fields['type'] or ''
  if kind ~= '' and string.find(types, ',' .. kind .. ',', 1, true) then
    local thread = fields['thread_id'] or ''
    if thread == '' then
      thread = '-'
    end
    local item = cjson.encode({id = id, type = kind, thread_id = thread,
      payload = fields['payload'] or '{}'})
    redis.call('RPUSH', prefix .. thread, item)
    redis.call('ZADD', KEYS[2], 'NX', now, thread)
    queued = queued + 1
  end
end
return {#entries, queued, last}
