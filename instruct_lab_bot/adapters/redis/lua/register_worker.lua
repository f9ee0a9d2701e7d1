-- Announce or renew a live worker: its registration (lapses after ttl) and the registry.
-- KEYS: the worker's hash, the registry (zset of name -> last heartbeat).
-- ARGV: name, now, ttl ms, forget registry members older than this, fields...
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
return 1
