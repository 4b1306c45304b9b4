-- Load a new coupon's state, unless the coupon already has some.
-- Registration never overwrites: a retried or reused id must not reset the stock under
-- existing winners. One script, so a download never sees half a coupon.
--
-- KEYS[1]  coupon:{id}  hash: name, quantity, stock, starts_ms, ends_ms (0 = no end)
-- ARGV[1]  name
-- ARGV[2]  quantity (the initial stock)
-- ARGV[3]  starts_ms
-- ARGV[4]  ends_ms
-- ARGV[5]  stock, when it is not the quantity (a rebuild: quantity less the rows that exist)
--
-- Returns: 1 loaded, 0 the coupon had state already (left as it was).

if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'quantity', ARGV[2], 'stock', ARGV[5] or ARGV[2],
           'starts_ms', ARGV[3], 'ends_ms', ARGV[4])
return 1
