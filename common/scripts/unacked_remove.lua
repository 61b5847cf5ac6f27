-- unacked_remove.lua: kombu's acks_late bookkeeping when a message is acknowledged.
--
-- KEYS[1] unacked_index  zset  delivery tag -> delivery time
-- KEYS[2] unacked        hash  delivery tag -> payload
-- ARGV[1] delivery_tag
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
