-- Take one unit of a coupon's stock for a member, if any is left, and note the member as
-- unsettled in the same step (the lock strategy, before its commit).
--
-- The lock normally makes the stock check redundant; it is what keeps "no oversell" true when
-- a lock holder outlives the lock's expiry and a second holder runs alongside it. The note is
-- what keeps "no unit lost": whatever happens next (the reply is lost, the commit fails, the
-- process is killed), the member stays unsettled until a commit is known, and settlement
-- completes the member's row rather than trusting that a commit did not happen.
--
-- KEYS[1]  coupon:{id}            hash with field stock
-- KEYS[2]  coupon_unsettled:{id}  set of members holding a unit whose row is not known committed
-- ARGV[1]  member id
--
-- Returns: 1 taken (and noted), 0 none left.

local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
if stock == nil or stock <= 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'stock', -1)
redis.call('SADD', KEYS[2], ARGV[1])
return 1
