-- Record one member's revocation entry and append it to the log every API process reads.
-- Refused while the revocations are not loaded (a new or emptied Redis): the caller rebuilds them
-- from the database first (revocation_restore.lua), so a lone entry never stands for all of them.
--
-- KEYS[1]  revocations_meta     hash: generation (of the last rebuild), seq (last sequence number)
-- KEYS[2]  revocations          hash: member id -> entry ("<status>:<revoked_at>")
-- KEYS[3]  revocations_log      sorted set: member id scored by the seq of its latest entry
-- ARGV[1]  member id
-- ARGV[2]  entry
--
-- Returns: the entry's seq (>= 1), or 0 when the revocations are not loaded (nothing written).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
return seq
