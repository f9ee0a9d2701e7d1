-- Give a dead job a fresh set of attempts: its record reset, queued again, its dead letter
-- removed, all at once (a script, not MULTI: a Cluster client has no transactions).
-- The job's result claim goes too: the new round records (and posts) its own result.
-- KEYS: job, jobs stream, dead stream, the job's result claim.
-- ARGV: dead entry id, maxlen, min id (age bound), the 6 fields of the queue entry (v, job,
-- traceparent), then the job's fields.
redis.call('HSET', KEYS[1], unpack(ARGV, 10))
redis.call('PERSIST', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4, 9))
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
redis.call('XDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
