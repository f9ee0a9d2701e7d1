-- Move a job to ARGV[1] only if its state is one of ARGV[5..4+n]; then set the field pairs.
-- KEYS: job, active. ARGV: new state, n, terminal ('1'/'0'), ttl, states..., fields...
-- include: end_job
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
local n = tonumber(ARGV[2])
for i = 5, 4 + n do
  if ARGV[i] == current then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], unpack(ARGV, 5 + n))
    if ARGV[3] == '1' then
      end_job(KEYS[1], KEYS[2], redis.call('HGET', KEYS[1], 'id'), ARGV[4])
    end
    return {'ok', current}
  end
end
return {'refused', current}
