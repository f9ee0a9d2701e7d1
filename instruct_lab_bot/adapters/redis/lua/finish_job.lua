-- End a running job and acknowledge its entry in one step, only for the worker that runs it.
-- KEYS: job, stream, active. ARGV: group, entry id, worker, new state, ttl, fields...
-- include: end_job
local current = redis.call('HGET', KEYS[1], 'state')
if current ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then
  return {'refused', current or ''}
end
redis.call('HSET', KEYS[1], 'state', ARGV[4], unpack(ARGV, 6))
end_job(KEYS[1], KEYS[3], redis.call('HGET', KEYS[1], 'id'), ARGV[5])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return {'ok', current}
