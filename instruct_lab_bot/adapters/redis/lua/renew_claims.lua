-- Renew a consumer's claim on entries it is still handling: XCLAIM (JUSTID: the delivery
-- count is unchanged) resets their idle time, so no other consumer's XAUTOCLAIM takes them
-- over. Only entries still pending for this consumer are touched: one another consumer took
-- over meanwhile stays with it, and one acknowledged meanwhile stays acknowledged.
-- KEYS: stream. ARGV: group, consumer, ids... Returns the ids renewed.
local renewed = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #pending > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    renewed[#renewed + 1] = ARGV[i]
  end
end
return renewed
