-- Move a job that used up its attempts to the dead-letter stream.
-- KEYS: job, stream, dead stream, active. ARGV: group, entry id, reason, ttl, now, maxlen,
-- min id (age bound of the dead stream).
-- include: end_job
local current = redis.call('HGET', KEYS[1], 'state')
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
if current ~= 'queued' and current ~= 'running' then return {'refused', current or ''} end
local job_id = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'state', 'dead', 'error', ARGV[3], 'finished_at', ARGV[5],
           'worker', '')
end_job(KEYS[1], KEYS[4], job_id, ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'job', job_id, 'reason', ARGV[3])
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[7])
return {'ok', current}
