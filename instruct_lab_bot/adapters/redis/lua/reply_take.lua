-- Count one reply against a person's and a pull request's sliding windows, unless either is
-- full (then nothing is counted: silence costs nothing). The chat proxy's request rates per
-- person and per PR model use it too (`ChatRecords.take_request`).
-- KEYS: the person's window, the pull request's window (zsets of reply times in ms).
-- ARGV: window ms, the person's limit, the pull request's limit, a unique member.
-- Returns 'ok', 'user' or 'pull_request'.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 'user' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'pull_request' end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[i], window + 1000)
end
return 'ok'
