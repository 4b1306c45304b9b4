-- The lock strategy's check by Redis's clock: before it queues for the coupon's lock (so most
-- refusals cost no lock), and again once it holds it (the window may have ended meanwhile).
-- Stock never comes back: a coupon with none left is sold out, unless a member is still
-- unsettled, whose row the next lock holder completes (it takes no unit).
--
-- KEYS[1]  coupon:{id}            hash: stock, starts_ms, ends_ms (0 = no end)
-- KEYS[2]  coupon_unsettled:{id}  set of members whose commit is unknown
--
-- Returns the codes of issue.lua: 0 go on, 1 coupon not found, 2 not started,
--         3 ended, 5 sold out.

local state = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms')
if not state[1] then
  return NOT_FOUND
end
local closed = window_closed(tonumber(state[2]), tonumber(state[3]), now_ms())
if closed then
  return closed
end
if tonumber(state[1]) <= 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  return SOLD_OUT
end
return OK
