-- Settle a claimed outbox entry, only while its claim is still the caller's.
-- KEYS: the outbox (zset), the entry (hash).
-- ARGV: owner, job id, 'done' | 'retry' | 'renew', and ms (until the next attempt or the
--       lease's new end).
-- Returns 1 when settled, 0 when the claim had passed to another owner (or the entry is gone).
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
if ARGV[3] == 'done' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[4]), ARGV[2])
if ARGV[3] == 'retry' then redis.call('HDEL', KEYS[2], 'owner') end
return 1
