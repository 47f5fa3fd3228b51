-- Seeds budget counters from the store's spend (see shared.rs): each
-- counter's `spent` becomes the larger of what Redis holds and what the
-- store recorded. Spend only grows within a period and the store never
-- holds more than was spent, so this never lowers a counter, and a counter
-- Redis lost comes back at the store's figure. Then marks the counters as
-- seeded, so a later loss of Redis's data is noticed.
-- KEYS[i]: a counter hash; the last key: the seeded marker.
-- ARGV[2i-1]: the store's spend (micro-USD); ARGV[2i]: the key's ttl (ms).
local n = #KEYS - 1
for i = 1, n do
  local spent = tonumber(ARGV[2 * i - 1])
  local current = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  if spent > current then
    redis.call('HSET', KEYS[i], 'spent', spent)
  end
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i]))
end
redis.call('SET', KEYS[#KEYS], '1')
return n
