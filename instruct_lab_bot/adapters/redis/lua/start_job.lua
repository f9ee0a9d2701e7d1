-- Start (or take over) a job for one worker: queued → running; with ARGV[4] == '1' also a
-- running job whose lease expired. Counts the attempt; refuses past the attempt limit. Returns
-- the job's fields too, so starting a job costs one round trip.
-- KEYS: job. ARGV: worker, now, max attempts, allow running, lease seconds.
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
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[3]) then
  return {'exhausted', current, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started_at', ARGV[2],
           'heartbeat_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {'ok', current, redis.call('HGETALL', KEYS[1])}
