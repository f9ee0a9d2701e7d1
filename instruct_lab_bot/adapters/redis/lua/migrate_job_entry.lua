-- Move one entry of the jobs stream from before worker pools to its pool's stream, at most
-- once (a second migrator finds it gone). Only a job's current entry (its `stream_id`) moves,
-- and only while the job still waits: queued, or running on a worker whose lease lapsed
-- (queued again: the next worker of its pool takes it over). A job running under a live lease
-- keeps its entry here until its worker ends or hands it back ('held'; a later pass moves
-- what is left). Anything else (acknowledged, ended, expired, a duplicate) is dropped. The
-- legacy stream goes once it is empty.
-- KEYS: legacy stream, pool stream, job. ARGV: group, entry id, maxlen, now, lease seconds,
-- '1' if the legacy stream has the group.
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 0 then return 'gone' end
local state = redis.call('HGET', KEYS[3], 'state')
local stream_id = redis.call('HGET', KEYS[3], 'stream_id') or ''
local current = stream_id == ARGV[2] or stream_id == ''
if current and state == 'running' then
  local beat = tonumber(redis.call('HGET', KEYS[3], 'heartbeat_at') or '0')
  if beat > tonumber(ARGV[4]) - tonumber(ARGV[5]) then return 'held' end
end
local outcome = 'dropped'
if current and (state == 'queued' or state == 'running') then
  local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(found[1][2]))
  redis.call('HSET', KEYS[3], 'stream_id', entry)
  if state == 'running' then redis.call('HSET', KEYS[3], 'state', 'queued', 'worker', '') end
  outcome = 'moved'
end
if ARGV[6] == '1' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return outcome
