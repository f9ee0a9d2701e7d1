-- Extend the pause key to ARGV[1] ms unless it already lasts longer.
-- KEYS: the installation's pause key. ARGV: pause ms.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
