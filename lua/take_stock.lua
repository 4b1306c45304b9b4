-- Take one unit of a coupon's stock for a member, if the window is open and a unit is left, and
-- note the member as unsettled in the same step (the lock strategy, under the coupon's lock,
-- after its INSERT and before its commit).
--
-- This is the lock strategy's moment of decision, as issue.lua's is the lua strategy's: the
-- window is judged here, by Redis's clock, so a request that waited for the lock past the end
-- (a natural ends_ms, or the seller's close) takes nothing. The lock normally makes the stock
-- check redundant; it is what keeps "no oversell" true when a lock holder outlives the lock's
-- expiry and a second holder runs alongside it. The note is what keeps "no unit lost": whatever
-- happens next (the reply is lost, the commit fails, the process is killed), the member stays
-- unsettled until a commit is known, and settlement completes the member's row rather than
-- trusting that a commit did not happen.
--
-- KEYS[1]  coupon:{id}            hash: stock, starts_ms, ends_ms (0 = no end)
-- KEYS[2]  coupon_unsettled:{id}  set of members holding a unit whose row is not known committed
-- ARGV[1]  member id
--
-- Returns the codes of issue.lua: 0 taken (and noted), 2 not started, 3 ended,
--         5 none left (or the coupon has no state).

local state = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms')
if not state[1] then
  return SOLD_OUT
end
local closed = window_closed(tonumber(state[2]), tonumber(state[3]), now_ms())
if closed then
  return closed
end
if tonumber(state[1]) <= 0 then
  return SOLD_OUT
end
redis.call('HINCRBY', KEYS[1], 'stock', -1)
redis.call('SADD', KEYS[2], ARGV[1])
return OK
