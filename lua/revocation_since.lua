-- What changed in the revocations since a process's view was last refreshed: one round trip.
--
-- KEYS[1]  revocations_meta     hash: generation, seq
-- KEYS[2]  revocations          hash: member id -> entry
-- KEYS[3]  revocations_log      sorted set: member id scored by seq
-- ARGV[1]  the view's generation ('' for none yet)
-- ARGV[2]  the view's seq
--
-- Returns: {} when the revocations are not loaded; else {generation, seq, whole, id, entry, ...}:
-- whole = 1 with every entry (another generation than the view's), whole = 0 with the entries
-- logged after the view's seq (none when it is current).

local meta = redis.call('HMGET', KEYS[1], 'generation', 'seq')
if not meta[1] then
  return {}
end
local reply = {meta[1], meta[2]}
if meta[1] ~= ARGV[1] then
  reply[3] = 1
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all do
    reply[#reply + 1] = all[i]
  end
  return reply
end
reply[3] = 0
if tonumber(meta[2]) > tonumber(ARGV[2]) then
  local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[2], '+inf')
  for i = 1, #ids do
    reply[#reply + 1] = ids[i]
    reply[#reply + 1] = redis.call('HGET', KEYS[2], ids[i])
  end
end
return reply
