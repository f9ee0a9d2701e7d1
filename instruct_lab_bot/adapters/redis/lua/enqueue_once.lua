-- Store a delivery once: the same X-GitHub-Delivery twice appends one entry.
-- KEYS: delivery mark, events stream. ARGV: mark ttl, maxlen, fields...
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
