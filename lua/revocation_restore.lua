-- Load every revocation entry from the database's rows, unless they are loaded already.
-- A new generation tells every API process to reload its view whole.
--
-- KEYS[1]  revocations_meta     hash: generation, seq
-- KEYS[2]  revocations          hash: member id -> entry
-- KEYS[3]  revocations_log      sorted set: member id scored by seq
-- ARGV[1]  the new generation (a random string)
-- ARGV[2..] member id, entry, member id, entry, ...
--
-- Returns: 1 loaded, 0 they were loaded already (left as they were).

if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
local seq = 0
for i = 2, #ARGV, 2 do
  seq = seq + 1
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[3], seq, ARGV[i])
end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'seq', seq)
return 1
