-- release.lua: clear the thread's scheduled flag if its inbox is empty (the drainer is done).
--
-- KEYS[1] inbox      list
-- KEYS[2] scheduled  string
-- KEYS[3] pending    zset
-- KEYS[4] meta       hash
-- ARGV[1] thread_id
-- Returns 1 when released, 0 when more email arrived (the drainer goes on).
local thread_id = ARGV[1]
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], thread_id)
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HSET', KEYS[4], 'drain_attempts', 0) end
  return 1
end
return 0
