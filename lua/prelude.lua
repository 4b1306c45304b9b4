-- Put before every script by strategies/scripts.py: the reply codes, Redis's clock and the
-- download window's rule, written once for every script that judges a window.

-- Reply codes (strategies/scripts.py names the same numbers).
local OK, NOT_FOUND, NOT_STARTED, ENDED, ALREADY_ISSUED, SOLD_OUT = 0, 1, 2, 3, 4, 5

-- Redis's clock in epoch microseconds (exact in a Lua number: under 2^53 until the year 2255).
local function now_us()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000000 + tonumber(now[2])
end

-- Epoch microseconds as epoch milliseconds: the unit of starts_ms and ends_ms.
local function ms_of(us)
  return math.floor(us / 1000)
end

-- Redis's clock in epoch milliseconds.
local function now_ms()
  return ms_of(now_us())
end

-- The window's verdict at at_ms: NOT_STARTED before starts_ms, ENDED from ends_ms on (0: no end),
-- nil while it is open.
local function window_closed(starts_ms, ends_ms, at_ms)
  if at_ms < starts_ms then
    return NOT_STARTED
  end
  if ends_ms > 0 and at_ms >= ends_ms then
    return ENDED
  end
  return nil
end

