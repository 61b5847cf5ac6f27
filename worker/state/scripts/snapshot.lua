-- snapshot.lua: a consistent read of one thread (and, for a drainer, its liveness flag).
--
-- KEYS[1] meta       hash   thread meta (version, status, usage, ...)
-- KEYS[2] messages   list   the Claude messages array (JSON turns)
-- KEYS[3] inbox      list   pending email payloads (JSON)
-- KEYS[4] applied    set    email ids already applied to the thread
-- KEYS[5] scheduled  string the thread's "scheduled" flag
-- KEYS[6] pending    zset   threads with unprocessed email (the sweeper's work list)
-- KEYS[7] packed     string the thread compacted while idle (the caller restores it, re-reads)
-- ARGV[1] mode         'read' (just read), 'refresh' (a call follows: refresh the running flag)
--                      or 'begin' (a drain task starts: also count the attempt, for poison)
-- ARGV[2] now          unix time, seconds
-- ARGV[3] flag_seconds TTL of the running flag
-- ARGV[4] thread_id
-- ARGV[5] worker       the drainer's worker id (whose heartbeat the sweeper checks; may be '')
-- Returns {meta (flat HGETALL), messages, inbox, applied flags (0/1 per inbox item), attempts,
--          packed (1 when the thread is packed: meta and messages are then empty)}.
local mode, now, flag_seconds, thread_id, worker = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local attempts = 0
if mode ~= 'read' then
  redis.call('SET', KEYS[5], 'running:' .. now .. ':' .. worker, 'EX', flag_seconds)
end
local inbox = redis.call('LRANGE', KEYS[3], 0, -1)
if mode == 'begin' and #inbox > 0 then
  redis.call('ZADD', KEYS[6], 'NX', now, thread_id)
  attempts = redis.call('HINCRBY', KEYS[1], 'drain_attempts', 1)
end
local meta = redis.call('HGETALL', KEYS[1])
local msgs = redis.call('LRANGE', KEYS[2], 0, -1)
local applied = {}
local ids, where = {}, {}
for i, item in ipairs(inbox) do
  applied[i] = 0
  local ok, decoded = pcall(cjson.decode, item)
  if ok and type(decoded) == 'table' and type(decoded['message_id']) == 'string' then
    ids[#ids + 1] = decoded['message_id']
    where[#ids] = i
  end
end
-- In chunks: unpack() is bounded by Lua's C stack (a flooded inbox can hold thousands).
for first = 1, #ids, 1000 do
  local last = math.min(first + 999, #ids)
  local found = redis.call('SMISMEMBER', KEYS[4], unpack(ids, first, last))
  for j, flag in ipairs(found) do applied[where[first + j - 1]] = flag end
end
local packed = 0
if #meta == 0 then packed = redis.call('EXISTS', KEYS[7]) end
return {meta, msgs, inbox, applied, attempts, packed}
