-- The lock strategy's check before it queues for the coupon's lock, by Redis's clock.
-- Stock only comes back by settling an unknown commit, so a coupon with none left and nothing
-- to settle is sold out without taking the lock.
--
-- KEYS[1]  coupon:{id}            hash: stock, starts_ms, ends_ms (0 = no end)
-- KEYS[2]  coupon_unsettled:{id}  set of members whose commit is unknown
--
-- Returns the codes of issue.lua: 0 take the lock, 1 coupon not found, 2 not started,
--         3 ended, 5 sold out.

local state = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms')
if not state[1] then
  return 1
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now_ms < tonumber(state[2]) then
  return 2
end
local ends_ms = tonumber(state[3])
if ends_ms > 0 and now_ms >= ends_ms then
  return 3
end
if tonumber(state[1]) <= 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  return 5
end
return 0
