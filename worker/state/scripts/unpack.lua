-- unpack.lua: restore a packed thread to its working form (the caller decompressed it), when
-- the customer writes again; a no-op if another drainer restored it first.
--
-- KEYS[1] meta       hash
-- KEYS[2] messages   list
-- KEYS[3] applied    set
-- KEYS[4] ledger     hash
-- KEYS[5] packed     string
-- ARGV[1] the thread as JSON: {"meta": {..}, "messages": [json turn, ..], "applied": [id, ..],
--         "ledger": {..}}
-- ARGV[2] packed     the packed value the caller read (restored only if it is still the same)
-- Returns 1 when restored, 0 when there was nothing to do.
if redis.call('GET', KEYS[5]) ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local thread = cjson.decode(ARGV[1])
local ttl = redis.call('PTTL', KEYS[5])
local function flat(map)
  local out = {}
  for name, value in pairs(map) do
    out[#out + 1] = name
    out[#out + 1] = value
  end
  return out
end
local meta = flat(thread['meta'])
if #meta > 0 then redis.call('HSET', KEYS[1], unpack(meta)) end
for first = 1, #thread['messages'], 1000 do
  redis.call('RPUSH', KEYS[2], unpack(thread['messages'], first, math.min(first + 999, #thread['messages'])))
end
for first = 1, #thread['applied'], 1000 do
  redis.call('SADD', KEYS[3], unpack(thread['applied'], first, math.min(first + 999, #thread['applied'])))
end
local ledger = flat(thread['ledger'])
if #ledger > 0 then redis.call('HSET', KEYS[4], unpack(ledger)) end
if ttl > 0 then
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
redis.call('DEL', KEYS[5])
return 1
