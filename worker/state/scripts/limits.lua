-- limits.lua: the per-address limits a decision reads before its Claude call, in one command.
--
-- KEYS[1]   questions  string questions sent to the recipient today (counter)
-- KEYS[2]   last       string unix time of the last question to the recipient
-- KEYS[3..] senders    string one counter per sender: its emails this hour
-- ARGV[1]   sender_ttl seconds a sender counter lives after its last increment
-- ARGV[2..] counts     emails to add to each sender's counter, in KEYS order from KEYS[3]
-- Returns {questions today or nil, last question time or nil, each sender's count after adding}.
local out = {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
for i = 3, #KEYS do
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[i - 1])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return out
