-- Record a job's final result for delivery, once per job however often it is reported.
-- KEYS: the job's result claim (once-marker), its outbox entry (hash), the outbox (zset of
--       job id -> when it is next due, ms).
-- ARGV: job id, the entry's payload, the entry's lifetime (seconds), the job's end state (kept
--       in the claim: a takeover after a failover that lost the end state ends the job with it).
-- Returns 1 when recorded, 0 when this job's result was recorded before.
if not redis.call('SET', KEYS[1], ARGV[4], 'NX', 'EX', ARGV[3]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], 'payload', ARGV[2], 'attempts', 0)
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], now, ARGV[1])
return 1
