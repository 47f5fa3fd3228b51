-- A concurrency slot shared by every instance (see concurrency/shared.rs):
-- takes one of `max` slots of a level, or says there is none free.
-- KEYS[1]: the level's slots (sorted set: slot id -> lease end, ms).
-- ARGV: max, slot id, lease (ms). Slots whose lease ended (their instance
-- died) are freed first. Returns 1 when taken, 0 when all are in use.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
  return 1
end
return 0
