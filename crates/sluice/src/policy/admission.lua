-- Admission of one request in shared mode (see admission.rs): its budgets,
-- its rate limits and its first concurrency slots, in one round trip.
-- Budgets and rate limits are all-or-nothing: every enforced budget
-- counter and every enforced rate rule is checked before anything is
-- written, so a refused request reserves and counts nowhere. Slots are
-- then taken in order (narrowest level first) until one is full.
--
-- ARGV[1..4]: nb budget counters, ng rate gates, nr rate rules, ns slots.
-- KEYS: 4 per budget counter (the counter hash of `spent` and `reserved`
-- micro-USD, its holds: a sorted set of hold id -> lease end in ms, the
-- hold amounts, the alert fractions fired), then one per rate gate (its
-- theoretical arrival time, µs), then two per slot (a sorted set of slot
-- id -> lease end in ms, and the level's waiting tickets -> lease end in
-- ms: concurrency/take_slot.lua).
-- ARGV after the header, in this order:
--   budgets (only when nb > 0): hold id, lease (ms), then per counter
--     limit, amount, enforce (1: refuse beyond the limit), ttl (ms);
--   rate gates: per gate rule index, emission interval t (µs per cell),
--     burst B (cells), cost (cells); then per rule its shadow flag (0/1);
--   slots: per slot max, slot id, lease (ms).
-- A gate admits `cost` cells when max(tat, now) + cost·t - now <= B·t; a
-- shadow rule that would refuse is skipped and not counted. A hold or slot
-- whose lease ended (its instance died) is released first.
--
-- Returns {1, counter, spent, reserved} when an enforced budget refuses,
-- {2, rule, gate, wait_us, reset_us} when an enforced rate rule refuses
-- (nothing written in either case), else
-- {0, over_1..over_nb, shadow_rule_refused or 0,
--  remaining_1, reset_1, ..., remaining_ng, reset_ng, slots_taken}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local nb, ng, nr, ns = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local a = 5

-- Budgets: release lapsed holds, then check every counter.
local hold_id, lease, over = nil, 0, {}
if nb > 0 then
  hold_id, lease = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
end
local budget_arg = a
for i = 1, nb do
  local k, holds, amounts = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  for _, h in ipairs(redis.call('ZRANGEBYSCORE', holds, '-inf', now_ms)) do
    local amt = tonumber(redis.call('HGET', amounts, h) or '0')
    redis.call('HINCRBY', k, 'reserved', -amt)
    redis.call('HDEL', amounts, h)
    redis.call('ZREM', holds, h)
  end
  local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', k, 'reserved') or '0')
  local b = budget_arg + (i - 1) * 4
  local fits = spent + reserved + tonumber(ARGV[b + 1]) <= tonumber(ARGV[b])
  if not fits and ARGV[b + 2] == '1' then
    return {1, i, spent, reserved}
  end
  over[i] = fits and 0 or 1
end
a = budget_arg + 4 * nb

-- Rate gates: compute every gate, refuse on the first enforced rule.
local gate_key = 4 * nb
local gates = {}
for i = 1, ng do
  local b = a + (i - 1) * 4
  local g = {
    rule = tonumber(ARGV[b]),
    t = tonumber(ARGV[b + 1]),
    burst = tonumber(ARGV[b + 2]),
    cost = tonumber(ARGV[b + 3]),
  }
  local tat = tonumber(redis.call('GET', KEYS[gate_key + i]) or '0')
  if tat < now then tat = now end
  g.new_tat = tat + g.cost * g.t
  g.ok = (g.new_tat - now) <= g.burst * g.t
  gates[i] = g
end
local shadow_arg = a + 4 * ng
local shadow_refused, skip = 0, {}
for r = 1, nr do
  local shadow = ARGV[shadow_arg + r - 1] == '1'
  for i = 1, ng do
    local g = gates[i]
    if g.rule == r and not g.ok then
      if shadow then
        skip[r] = true
        if shadow_refused == 0 then shadow_refused = r end
      else
        return {2, r, i, g.new_tat - g.burst * g.t - now, g.new_tat - g.cost * g.t - now}
      end
    end
  end
end
a = shadow_arg + nr

-- Admitted: reserve under every budget counter, count every gate.
local out = {0}
for i = 1, nb do
  local k, holds, amounts = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  local b = budget_arg + (i - 1) * 4
  local amount, ttl = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 3])
  redis.call('ZADD', holds, now_ms + lease, hold_id)
  redis.call('HSET', amounts, hold_id, amount)
  redis.call('HINCRBY', k, 'reserved', amount)
  for _, key in ipairs({k, holds, amounts}) do
    redis.call('PEXPIRE', key, ttl)
  end
  out[#out + 1] = over[i]
end
out[#out + 1] = shadow_refused
for i = 1, ng do
  local g = gates[i]
  if not skip[g.rule] then
    local ttl = math.ceil((g.new_tat - now) / 1000) + 1
    redis.call('SET', KEYS[gate_key + i], string.format('%.0f', g.new_tat), 'PX', ttl)
    out[#out + 1] = math.floor((g.burst * g.t - (g.new_tat - now)) / g.t)
    out[#out + 1] = g.new_tat - now
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end

-- Slots, narrowest level first, until one is full or has requests waiting
-- for it in its line (they go first).
local slot_key, taken = 4 * nb + ng, 0
for i = 1, ns do
  local key, b = KEYS[slot_key + 2 * i - 1], a + (i - 1) * 3
  local max, id, slot_lease = tonumber(ARGV[b]), ARGV[b + 1], tonumber(ARGV[b + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  local waiting = redis.call('ZCOUNT', KEYS[slot_key + 2 * i], now_ms, '+inf')
  if redis.call('ZCARD', key) + waiting >= max then break end
  redis.call('ZADD', key, now_ms + slot_lease, id)
  -- Kept until a second after the longest lease in it, not this one's.
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, tonumber(last[2]) + 1000)
  taken = taken + 1
end
out[#out + 1] = taken
return out
