-- Settles a request's budget holds (see shared.rs): each hold still there
-- leaves `reserved` (a hold already expired was released by reserve.lua),
-- the real cost joins `spent`, and the alert fractions that `spent` now
-- reaches and that no instance fired yet in this period are fired.
--
-- Per counter i, the four keys of reserve.lua. ARGV: n, hold id, then per
-- counter: cost, limit, fractions (comma-separated, may be empty), ttl.
-- Returns {i, "fraction", spent, ...} for each fraction newly fired.
local n = tonumber(ARGV[1])
local id = ARGV[2]
local out = {}
for i = 1, n do
  local k, holds, amounts, fired = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local base = 2 + (i - 1) * 4
  local cost, limit, fractions, ttl = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), ARGV[base + 3], tonumber(ARGV[base + 4])
  if redis.call('ZREM', holds, id) == 1 then
    local a = tonumber(redis.call('HGET', amounts, id) or '0')
    redis.call('HINCRBY', k, 'reserved', -a)
    redis.call('HDEL', amounts, id)
  end
  local spent = redis.call('HINCRBY', k, 'spent', cost)
  for f in string.gmatch(fractions, '[^,]+') do
    if spent >= tonumber(f) * limit and redis.call('SADD', fired, f) == 1 then
      out[#out + 1] = tostring(i)
      out[#out + 1] = f
      out[#out + 1] = tostring(spent)
    end
  end
  redis.call('PEXPIRE', k, ttl)
  redis.call('PEXPIRE', fired, ttl)
end
return out
