-- Decide one download request of the lua strategy, atomically.
-- Checks everything first (a script has no rollback), then marks the winner.
--
-- KEYS[1]  coupon:{id}                 hash: stock, starts_ms, ends_ms (0 = no end)
-- KEYS[2]  coupon_winners:{id}         set of member ids who won
-- KEYS[3]  issuable_coupon_queue:{id}  sorted set of winners waiting for persistence,
--                                      scored by acceptance time in microseconds
-- KEYS[4]  drain_due                   set of coupons with winners to drain (optional, with KEYS[5])
-- KEYS[5]  member_pending:<member id>  set of the member's coupons still in a queue (optional)
-- ARGV[1]  member id
-- ARGV[2]  coupon id (with KEYS[4] and KEYS[5])
--
-- KEYS[4] and KEYS[5] carry no coupon hash tag: on a standalone Redis the caller passes them and
-- the win is noted in the same atomic step; on a cluster they sit in other slots, so the caller
-- passes three keys and notes the win itself afterwards.
--
-- Returns: 0 accepted (now a winner, queued), 1 coupon not found, 2 not started,
--          3 ended, 4 already issued, 5 sold out.

local state = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms')
if not state[1] then
  return NOT_FOUND
end

local accepted_us = now_us()
local closed = window_closed(tonumber(state[2]), tonumber(state[3]), ms_of(accepted_us))
if closed then
  return closed
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return ALREADY_ISSUED
end
if tonumber(state[1]) <= 0 then
  return SOLD_OUT
end

redis.call('HINCRBY', KEYS[1], 'stock', -1)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], accepted_us, ARGV[1])
if KEYS[5] then
  redis.call('SADD', KEYS[4], ARGV[2])
  redis.call('SADD', KEYS[5], ARGV[2])
end
return OK
