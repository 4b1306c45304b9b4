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
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ends_ms = tonumber(state[2])
if ends_ms > 0 and ends_ms <= now_ms then
  return ends_ms
end
if tonumber(state[1]) > now_ms then
  redis.call('HSET', KEYS[1], 'starts_ms', now_ms, 'ends_ms', now_ms)
else
  redis.call('HSET', KEYS[1], 'ends_ms', now_ms)
end
return now_ms
