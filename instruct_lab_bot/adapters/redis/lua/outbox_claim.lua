-- Claim due outbox entries for delivery: each is leased to one owner (its due time moved past
-- the lease, renewed while the owner posts) and its attempt counted.
-- KEYS: the outbox (zset of job id -> due ms).
-- ARGV: owner, lease ms, how many to claim, the entry key prefix, and optionally one job id
--       (claim only that one, if it is due).
-- Returns a flat list: job id, payload, attempts, ... for each entry claimed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids
if ARGV[5] then
  local due = redis.call('ZSCORE', KEYS[1], ARGV[5])
  ids = {}
  if due and tonumber(due) <= now then ids[1] = ARGV[5] end
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
end
local claimed = {}
for _, id in ipairs(ids) do
  local entry = ARGV[4] .. id
  local payload = redis.call('HGET', entry, 'payload')
  if not payload then
    redis.call('ZREM', KEYS[1], id)  -- expired: nothing left to deliver
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    redis.call('HSET', entry, 'owner', ARGV[1])
    local attempts = redis.call('HINCRBY', entry, 'attempts', 1)
    table.insert(claimed, id)
    table.insert(claimed, payload)
    table.insert(claimed, attempts)
  end
end
return claimed
