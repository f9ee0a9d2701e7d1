-- Create a job hash, index it by PR and claim its (PR, sha, command) slot: all or nothing.
-- KEYS: job, pr index, active, all-jobs index. ARGV: id, created_at, history ttl, active ttl,
-- job key prefix, fields...
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ARGV[1]} end
local other = redis.call('GET', KEYS[3])
if other then
  local state = redis.call('HGET', ARGV[5] .. other, 'state')
  if state == 'queued' or state == 'running' then return {'active', other} end
end
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4])
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
return {'created', ARGV[1]}
