-- Put back an entry a consumer read but will not run (a read over several pools' streams
-- returned more than the one it had room for): queued again at the stream's end and
-- acknowledged, for any worker of its pool; the job's `stream_id` follows it.
-- KEYS: stream, job. ARGV: group, entry id, consumer, maxlen, fields...
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3])
if #pending == 0 then return false end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
if redis.call('HGET', KEYS[2], 'stream_id') == ARGV[2] then
  redis.call('HSET', KEYS[2], 'stream_id', entry)
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return entry
