-- acquire_rate.lua: the fleet-wide rate limiter's token buckets (requests and input tokens).
--
-- KEYS[i]         hash   bucket i: fields level, ts (one per limit: requests, input tokens)
-- ARGV[2i-1]      limit of bucket i per minute
-- ARGV[2i]        what this request needs from bucket i
-- ARGV[#ARGV]     burst_seconds: how many seconds of the limit a full bucket holds
-- Returns '0' when taken from every bucket, else the seconds to wait (nothing taken). Uses the
-- Redis clock, so every worker shares one notion of time.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local burst_seconds = tonumber(ARGV[#ARGV])
local wait = 0
local levels = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local need = tonumber(ARGV[2 * i])
  local capacity = math.max(1, limit * burst_seconds / 60)
  -- Refill so that burst + refill never exceed the limit in any 60 s window.
  local rate = math.max(limit - capacity, limit / 60) / 60
  need = math.min(need, capacity)
  local state = redis.call('HMGET', KEYS[i], 'level', 'ts')
  local level = tonumber(state[1]) or capacity
  local since = tonumber(state[2]) or now
  level = math.min(capacity, level + math.max(0, now - since) * rate)
  levels[i] = {level, need}
  if level < need then wait = math.max(wait, (need - level) / rate) end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'level', tostring(levels[i][1] - levels[i][2]), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], 3600)
end
return '0'
