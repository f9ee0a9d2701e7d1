-- Store a delivery once: the same X-GitHub-Delivery twice appends one entry.
-- KEYS: delivery mark, events stream. ARGV: mark ttl, maxlen, min id (age bound), fields...
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
  redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
  return entry
end
return false
