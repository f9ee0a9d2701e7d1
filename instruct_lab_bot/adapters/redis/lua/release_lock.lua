-- Delete a lock only if it is still ours (it may have expired and been taken since).
-- KEYS: the lock. ARGV: the owner token written when it was taken.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
