-- Take one GitHub write from an installation's sliding window, unless writes are paused.
-- KEYS: the installation's write window (zset of grants scored by ms), its pause key, and
--       optionally the window of one write class with a share of its own (replies).
-- ARGV: window ms, how many grants this class may see in the window, a unique member, and
--       (with KEYS[3]) how many grants of that class the window may hold.
-- Returns 0 when granted, else milliseconds until a retry could succeed. Time is Redis's own,
-- so processes with skewed clocks still share one window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local window = tonumber(ARGV[1])

local function wait_for(key, allowed)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count < allowed then return 0 end
  if allowed <= 0 then return window end
  local oldest = redis.call('ZRANGE', key, count - allowed, count - allowed, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end

local wait = wait_for(KEYS[1], tonumber(ARGV[2]))
if wait > 0 then return wait end
if KEYS[3] then
  wait = wait_for(KEYS[3], tonumber(ARGV[4]))
  if wait > 0 then return wait end
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[3], window + 1000)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window + 1000)
return 0
