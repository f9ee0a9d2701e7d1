-- Create a job hash, index it by PR and claim its (PR, sha, command) slot: all or nothing.
-- KEYS: job, pr index, active, all-jobs index, the job the claim named when the caller read it.
-- ARGV: id, created_at, history ttl, active ttl, the claim's holder as read ('' if none),
-- fields... 'retry' when the claim changed since it was read (the caller reads it again).
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ARGV[1]} end
local other = redis.call('GET', KEYS[3])
if (other or '') ~= ARGV[5] then return {'retry', ''} end
if other then
  local state = redis.call('HGET', KEYS[5], 'state')
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
