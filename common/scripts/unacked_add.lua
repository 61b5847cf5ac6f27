-- unacked_add.lua: kombu's acks_late bookkeeping when a message is delivered (one script instead
-- of a MULTI/EXEC pipeline; same keys and payload, so kombu's restore reads it unchanged).
--
-- KEYS[1] unacked_index  zset  delivery tag -> delivery time
-- KEYS[2] unacked        hash  delivery tag -> kombu's JSON [message, exchange, routing key]
-- ARGV[1] now            delivery time
-- ARGV[2] delivery_tag
-- ARGV[3] payload        kombu's own serialisation
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
