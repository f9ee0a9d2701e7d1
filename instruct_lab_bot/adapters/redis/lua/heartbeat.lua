-- Renew a lease: reset the entry's idle time (XCLAIM JUSTID keeps the delivery count) if this
-- worker still owns both the stream entry and the job. 0: the lease was lost; 2: someone asked
-- to cancel the job.
-- KEYS: stream, job. ARGV: group, worker, entry id, now.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[2], 'worker') ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
redis.call('HSET', KEYS[2], 'heartbeat_at', ARGV[4])
local cancel = redis.call('HGET', KEYS[2], 'cancel_requested')
if cancel and cancel ~= '' then return 2 end
return 1
