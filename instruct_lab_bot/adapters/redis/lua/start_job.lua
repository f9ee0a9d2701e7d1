-- Start (or take over) a job for one worker: queued → running; with ARGV[4] == '1' also a
-- running job whose lease expired. Counts the attempt; refuses past the attempt limit. Returns
-- the job's fields too, so starting a job costs one round trip.
-- A takeover of a job whose result was recorded already (its end state lost in a Redis failover
-- after the result claim was confirmed) does not run it again: it returns 'recorded' and the end
-- state kept in the claim, and takes the job over so that the worker can end it with that state.
-- KEYS: job, the job's result claim. ARGV: worker, now, max attempts, allow running, lease s.
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
if current ~= 'queued' and not (current == 'running' and ARGV[4] == '1') then
  return {'refused', current, redis.call('HGETALL', KEYS[1])}
end
if current == 'running' then
  local beat = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0')
  if beat > tonumber(ARGV[2]) - tonumber(ARGV[5]) then
    return {'refused', current, redis.call('HGETALL', KEYS[1])}
  end
end
local recorded = redis.call('GET', KEYS[2])
local ended = {succeeded=1, failed=1, timed_out=1, cancelled=1, superseded=1, dead=1}
if current == 'running' and recorded and ended[recorded] then
  redis.call('HSET', KEYS[1], 'worker', ARGV[1], 'heartbeat_at', ARGV[2])
  return {'recorded', current, redis.call('HGETALL', KEYS[1]), recorded}
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[3]) then
  return {'exhausted', current, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started_at', ARGV[2],
           'heartbeat_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {'ok', current, redis.call('HGETALL', KEYS[1])}
