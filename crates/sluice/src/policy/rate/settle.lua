-- Settles token reservations (see shared.rs): moves each counter's
-- theoretical arrival time back by what a request did not use, or forward
-- by what it used beyond its reservation. Times in µs of the server clock.
--
-- KEYS[i]: a token gate's counter. ARGV[2i-1]: its emission interval t
-- (µs per token); ARGV[2i]: the difference in tokens (negative: refund).
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
for i = 1, #KEYS do
  local t = tonumber(ARGV[2 * i - 1])
  local d = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if d < 0 then
    if tat > 0 then
      local new = tat + d * t
      if new <= now then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
      end
    end
  elseif d > 0 then
    if tat < now then tat = now end
    local new = tat + d * t
    redis.call('SET', KEYS[i], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
  end
end
return 0
