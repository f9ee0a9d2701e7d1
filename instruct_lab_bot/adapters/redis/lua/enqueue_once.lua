-- Store a delivery once: the same X-GitHub-Delivery twice appends one entry, and so does the
-- same comment under a new delivery id (a replayed body): one comment, one entry, ever.
-- KEYS: delivery mark, events stream[, comment mark].
-- ARGV: mark ttl, maxlen, min id (age bound), fields...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
  return false
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
if KEYS[3] then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
end
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
return entry
