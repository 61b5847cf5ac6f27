-- run_record.lua: one decision of a reprocessing run (or the shadow run) into the run's records,
-- with the calls it cost, in one step: a run killed at any moment has either both or neither.
--
-- KEYS[1] decisions  hash   item -> RunDecision JSON
-- KEYS[2] index      zset   item -> decided at
-- KEYS[3] events     stream the run's `run_decision` events
-- KEYS[4] meta       hash   the run's counters
-- KEYS[5] ledger     hash   the usage ledger's day (`model|category|counter` fields)
-- ARGV[1] item
-- ARGV[2] payload     the RunDecision as JSON
-- ARGV[3] decided_at  unix seconds
-- ARGV[4] outcome     classified | clarified | escalated | failed
-- ARGV[5] mode        once: an item already decided is left as it is (a resumed run never
--                     records an item twice); latest: replace it (the shadow run, per thread)
-- ARGV[6] events_maxlen
-- ARGV[7] ttl         seconds every key of the run lives after this write
-- ARGV[8] changed     '1' when the decision differs from live's
-- ARGV[9] emails      how many emails the decision covers
-- ARGV[10] charges    JSON [[ledger field, run counter, amount], ...]: the calls that returned,
--                     added whether or not the decision is recorded (they were paid)
-- Returns 1 when recorded, 0 when the item was already decided (mode once).
local item = ARGV[1]
for _, charge in ipairs(cjson.decode(ARGV[10])) do
  redis.call('HINCRBY', KEYS[5], charge[1], charge[3])
  redis.call('HINCRBY', KEYS[4], charge[2], charge[3])
end
redis.call('EXPIRE', KEYS[4], ARGV[7])
if ARGV[5] == 'once' and redis.call('HEXISTS', KEYS[1], item) == 1 then return 0 end
local new = redis.call('HSET', KEYS[1], item, ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], item)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',
  'type', 'run_decision', 'thread_id', item, 'payload', ARGV[2])
redis.call('HINCRBY', KEYS[4], 'decisions', 1)
redis.call('HINCRBY', KEYS[4], 'outcome:' .. ARGV[4], 1)
redis.call('HINCRBY', KEYS[4], 'emails_decided', tonumber(ARGV[9]))
if new == 1 then redis.call('HINCRBY', KEYS[4], 'items_decided', 1) end
if ARGV[8] == '1' then redis.call('HINCRBY', KEYS[4], 'changed', 1) end
redis.call('HSET', KEYS[4], 'updated_at', ARGV[3])
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return 1
