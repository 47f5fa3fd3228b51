-- GCRA admission of one request under every gate of every rule, atomically
-- (see shared.rs). Times are microseconds of the Redis server's clock, so
-- every instance shares one clock.
--
-- KEYS[i]: the counter (theoretical arrival time) of gate i.
-- ARGV: n, then per gate 4 numbers: rule index, emission interval t (µs
-- per cell), burst B (cells), cost (cells), then per rule (in order) its
-- shadow flag (0/1), as ARGV[2 + 4n + r].
-- A gate admits `cost` cells when max(tat, now) + cost·t - now <= B·t.
-- Returns {0, shadow_rule_refused or 0, remaining_1, reset_1, ...} when
-- admitted (every enforced rule admits; shadow rules that refuse are
-- skipped and not counted), or {1, rule, gate, wait_us, reset_us} when an
-- enforced rule refuses (nothing counted).
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local n = tonumber(ARGV[1])
local rules = {}
local gates = {}
local nrules = 0
for i = 1, n do
  local base = 1 + (i - 1) * 4
  local g = {
    rule = tonumber(ARGV[base + 1]),
    t = tonumber(ARGV[base + 2]),
    burst = tonumber(ARGV[base + 3]),
    cost = tonumber(ARGV[base + 4]),
  }
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  g.new_tat = tat + g.cost * g.t
  g.ok = (g.new_tat - now) <= g.burst * g.t
  gates[i] = g
  if g.rule > nrules then nrules = g.rule end
end
local shadow_refused = 0
local skip = {}
for r = 1, nrules do
  local shadow = tonumber(ARGV[2 + 4 * n + (r - 1)]) == 1
  for i = 1, n do
    local g = gates[i]
    if g.rule == r and not g.ok then
      if shadow then
        skip[r] = true
        if shadow_refused == 0 then shadow_refused = r end
      else
        local wait = g.new_tat - g.burst * g.t - now
        return {1, r, i, wait, g.new_tat - g.cost * g.t - now}
      end
    end
  end
end
local out = {0, shadow_refused}
for i = 1, n do
  local g = gates[i]
  if not skip[g.rule] then
    local ttl = math.ceil((g.new_tat - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.0f', g.new_tat), 'PX', ttl)
    out[#out + 1] = math.floor((g.burst * g.t - (g.new_tat - now)) / g.t)
    out[#out + 1] = g.new_tat - now
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
