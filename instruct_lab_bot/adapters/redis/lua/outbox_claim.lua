-- Claim due outbox entries for delivery: each is leased to one owner (its due time moved past
-- the lease, renewed while the owner posts) and its attempt counted.
-- KEYS: the outbox (zset of job id -> due ms), then each candidate's entry (hash).
-- ARGV: owner, lease ms, then each candidate's job id (the entry of ARGV[i] is KEYS[i - 1]).
-- Candidates not yet due are left alone. Returns a flat list: job id, payload, attempts, ...
-- for each entry claimed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local claimed = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local entry = KEYS[i - 1]
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= now then
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
end
return claimed
