-- Budget admission shared by every instance (see shared.rs): reserves a
-- request's maximum cost under every counter at once, or nothing.
--
-- Per counter i, four keys: the counter hash (fields `spent`, `reserved`,
-- in micro-USD), its holds (a sorted set: hold id -> expiry, ms), the hold
-- amounts (hash: hold id -> micro-USD) and the alert fractions fired (set).
-- ARGV: n, hold id, lease (ms), then per counter: limit, amount, enforce
-- (1: refuse beyond the limit; 0: admit anyway), ttl of the keys (ms).
-- Holds whose lease ran out (their instance died) are released first.
-- Returns {1, i, spent, reserved} when enforced counter i cannot take the
-- amount (nothing reserved), else {0, over_1, ..., over_n}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local id = ARGV[2]
local lease = tonumber(ARGV[3])
local over = {}
for i = 1, n do
  local k, holds, amounts = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  for _, h in ipairs(redis.call('ZRANGEBYSCORE', holds, '-inf', now)) do
    local a = tonumber(redis.call('HGET', amounts, h) or '0')
    redis.call('HINCRBY', k, 'reserved', -a)
    redis.call('HDEL', amounts, h)
    redis.call('ZREM', holds, h)
  end
  local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', k, 'reserved') or '0')
  local base = 3 + (i - 1) * 4
  local limit, amount = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local fits = spent + reserved + amount <= limit
  if not fits and ARGV[base + 3] == '1' then
    return {1, i, spent, reserved}
  end
  over[i] = fits and 0 or 1
end
local out = {0}
for i = 1, n do
  local k, holds, amounts, fired = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local base = 3 + (i - 1) * 4
  local amount, ttl = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 4])
  redis.call('ZADD', holds, now + lease, id)
  redis.call('HSET', amounts, id, amount)
  redis.call('HINCRBY', k, 'reserved', amount)
  for _, key in ipairs({k, holds, amounts}) do
    redis.call('PEXPIRE', key, ttl)
  end
  out[#out + 1] = over[i]
end
return out
