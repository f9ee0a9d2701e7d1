-- Library (included by the scripts that end a job): bound the job's history, and keep its
-- (PR, sha, command) claim, if the claim still names this job, as the slot's newest job for
-- as long as the job itself (no longer live: `create_job` may claim the slot over it; a
-- repeat of a job that succeeded on the same head is answered with it).
local function end_job(job_key, active_key, job_id, ttl)
  redis.call('EXPIRE', job_key, ttl)
  if redis.call('GET', active_key) == job_id then redis.call('EXPIRE', active_key, ttl) end
end
