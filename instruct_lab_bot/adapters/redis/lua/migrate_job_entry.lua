-- Move one entry of the jobs stream from before worker pools to its pool's stream, at most
-- once (a second migrator finds it gone): an entry a worker holds stays pending for that
-- consumer (same idle time and delivery count) in the pool's group, an entry never delivered
-- is queued there, and one already acknowledged is only dropped. The job's `stream_id`
-- follows the entry. The legacy stream goes once it is empty.
-- KEYS: legacy stream, pool stream, job. ARGV: group, entry id, 'new' if the group had not
-- delivered it yet, maxlen, '1' if the legacy stream has the group.
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 0 then return false end
local pending = {}
if ARGV[5] == '1' then
  pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
end
local moved = false
if redis.call('EXISTS', KEYS[3]) == 1 and (#pending > 0 or ARGV[3] == 'new') then
  moved = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(found[1][2]))
  if #pending > 0 then
    redis.call('XCLAIM', KEYS[2], ARGV[1], pending[1][2], 0, moved, 'IDLE', pending[1][3],
               'RETRYCOUNT', pending[1][4], 'FORCE', 'JUSTID')
  end
  if redis.call('HGET', KEYS[3], 'stream_id') == ARGV[2] then
    redis.call('HSET', KEYS[3], 'stream_id', moved)
  end
end
if #pending > 0 then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return moved
