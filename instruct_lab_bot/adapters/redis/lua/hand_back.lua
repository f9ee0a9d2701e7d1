-- Give a running job back (graceful shutdown): a fresh entry so another worker starts it now,
-- not after the lease expires; the attempt does not count against the job.
-- KEYS: job, stream. ARGV: group, entry id, worker, maxlen, traceparent, min id (age bound).
if redis.call('HGET', KEYS[1], 'state') ~= 'running'
   or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then
  return false
end
local job_id = redis.call('HGET', KEYS[1], 'id')
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'v', '1', 'job', job_id,
                         'traceparent', ARGV[5])
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[6])
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'stream_id', entry)
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return entry
