-- Take one unit of a coupon's stock if any is left (the lock strategy, before its commit).
-- The lock normally makes this check redundant; it is what keeps "no oversell" true when a
-- lock holder outlives the lock's expiry and a second holder runs alongside it.
--
-- KEYS[1]  coupon:{id}  hash with field stock
--
-- Returns: 1 taken, 0 none left.

local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
if stock == nil or stock <= 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'stock', -1)
return 1
