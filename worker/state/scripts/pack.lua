-- pack.lua: store an idle thread as one compressed value (the caller compressed it), if it has
-- not changed since it was read; the hash, list and set go, the packed value keeps their TTL.
--
-- KEYS[1] meta       hash
-- KEYS[2] messages   list
-- KEYS[3] applied    set
-- KEYS[4] ledger     hash   the thread's usage ledger
-- KEYS[5] packed     string the compressed thread
-- KEYS[6] inbox      list   (must be empty: a thread with pending email is not idle)
-- ARGV[1] version    the meta version the packed value was built from (the fence)
-- ARGV[2] packed     the compressed value
-- Returns 1 when packed, 0 when the thread changed meanwhile (left as it is).
local version, packed = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[1], 'version') ~= version then return 0 end
if redis.call('LLEN', KEYS[6]) > 0 then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if ttl > 0 then
  redis.call('SET', KEYS[5], packed, 'PX', ttl)
else
  redis.call('SET', KEYS[5], packed)
end
return 1
