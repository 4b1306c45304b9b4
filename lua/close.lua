-- End a coupon's download window now, by Redis's clock: ends_ms becomes min(ends_ms, now),
-- 0 (no end) counting as later than any time. A close never extends a window, and a retried
-- close keeps the first one's time. A window that has not opened yet opens and ends now
-- (starts_ms = ends_ms), so every later download answers "ended", never "not started".
--
-- KEYS[1]  coupon:{id}  hash: starts_ms, ends_ms (0 = no end), ...
--
-- Returns: the coupon's ends_ms after the close (epoch milliseconds); 0 if it has no state.

local state = redis.call('HMGET', KEYS[1], 'starts_ms', 'ends_ms')
if not state[2] then
  return 0
end
local at_ms = now_ms()
local ends_ms = tonumber(state[2])
local closed = window_closed(tonumber(state[1]), ends_ms, at_ms)
if closed == ENDED then
  return ends_ms
end
if closed == NOT_STARTED then
  redis.call('HSET', KEYS[1], 'starts_ms', at_ms, 'ends_ms', at_ms)
else
  redis.call('HSET', KEYS[1], 'ends_ms', at_ms)
end
return at_ms
