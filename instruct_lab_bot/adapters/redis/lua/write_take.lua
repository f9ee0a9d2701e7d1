-- Take one GitHub write from an installation's sliding window, unless writes are paused.
-- KEYS: the installation's write window (zset of grants scored by ms) and its pause key.
-- ARGV: window ms, how many grants this class may see in the window, a unique member.
-- Returns 0 when granted, else milliseconds until a retry could succeed. Time is Redis's own,
-- so processes with skewed clocks still share one window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local window = tonumber(ARGV[1])
local allowed = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < allowed then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return 0
end
if allowed <= 0 then return window end
local oldest = redis.call('ZRANGE', KEYS[1], count - allowed, count - allowed, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
