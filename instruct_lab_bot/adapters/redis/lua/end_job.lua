-- Library (included by the scripts that end a job): bound the job's history and end its
-- active claim (for dedup) if the claim still names this job.
local function end_job(job_key, active_key, job_id, ttl)
  redis.call('EXPIRE', job_key, ttl)
  if redis.call('GET', active_key) == job_id then redis.call('DEL', active_key) end
end
