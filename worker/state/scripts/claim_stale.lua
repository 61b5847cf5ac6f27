-- claim_stale.lua: the sweeper takes over a thread whose scheduled flag went stale
-- (compare-and-set, so of several sweeping workers exactly one re-publishes its drain task).
--
-- KEYS[1] scheduled     string the thread's scheduled flag
-- ARGV[1] seen          the flag value the sweeper judged stale ('' when missing)
-- ARGV[2] now           unix time
-- ARGV[3] flag_seconds  TTL of the new 'queued:<now>' flag
-- Returns 1 when claimed (publish a drain task), 0 when the flag changed meanwhile.
local seen, now, flag_seconds = ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('GET', KEYS[1])
if (current or '') ~= seen then return 0 end
redis.call('SET', KEYS[1], 'queued:' .. now, 'EX', flag_seconds)
return 1
