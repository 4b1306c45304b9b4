-- Redis's clock, read on the node that holds KEYS[1] (TIME is not allowed in a cluster pipeline,
-- and a cluster client would otherwise ask a random node).
--
-- KEYS[1]  any key: only routes the call
--
-- Returns: epoch milliseconds.

return now_ms()
