-- One waiting request's try for a level's shared concurrency slot
-- (concurrency/shared.rs), in a line every instance shares: strict priority
-- across classes, start-time fair queueing across the level's flows within
-- a class, arrival order between equal starts — the order each instance's
-- own queue keeps, kept across them.
--
-- KEYS[1] slots: sorted set of slot id -> lease end (ms)
-- KEYS[2] line: sorted set of ticket -> class * 2^44 + virtual start; a
--         ticket is its arrival number (16 hex digits) then the slot id, so
--         equal scores go in arrival order
-- KEYS[3] tickets: sorted set of ticket -> lease end (ms); a ticket lives
--         while its request keeps trying (each try renews it)
-- KEYS[4] flows: sorted set of flow -> virtual finish of its last ticket
-- KEYS[5] clock: hash of `v`, the line's virtual time (the start of the last
--         ticket served), and `n`, the last arrival number given
-- ARGV: max, slot id, slot lease (ms), class (0 critical .. 4 batch), flow,
--       cost (estimated tokens, >= 1), ticket lease (ms), arrival number
--       (0 on the first try)
--
-- A new ticket starts at max(clock, its flow's finish) and moves its flow's
-- finish on by its cost, so a flow sending ten times its share queues behind
-- itself; an idle flow banks no credit (the clock has moved on). A ticket
-- takes a slot when fewer tickets are ahead of it than slots are free.
-- Returns {1, 0, n} when the slot was taken, else {0, tickets ahead, n,
-- lapse}; n is the ticket's arrival number, for the next try, and lapse the
-- milliseconds until the first slot's lease ends (-1: no slot is held), so
-- the head of the line can try again right when a dead instance's slot
-- frees (nobody announces that one).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max, id, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local class, flow, cost = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local ticket_lease, n = tonumber(ARGV[7]), tonumber(ARGV[8])
local SPAN = 17592186044416 -- 2^44

-- Slots whose instance died, and tickets whose request stopped trying.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, g in ipairs(gone) do
  redis.call('ZREM', KEYS[2], g)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)

local clock = tonumber(redis.call('HGET', KEYS[5], 'v') or '0')
if n == 0 then
  n = redis.call('HINCRBY', KEYS[5], 'n', 1)
end
local ticket = string.format('%016x', n) .. id
local score = redis.call('ZSCORE', KEYS[2], ticket)
if not score then
  -- A new ticket (or one that lapsed while its request stalled).
  local start = math.max(clock, tonumber(redis.call('ZSCORE', KEYS[4], flow) or '0'))
  redis.call('ZADD', KEYS[4], start + cost, flow)
  score = class * SPAN + start
  redis.call('ZADD', KEYS[2], score, ticket)
else
  score = tonumber(score)
end
redis.call('ZADD', KEYS[3], now + ticket_lease, ticket)

local keep = math.max(lease, ticket_lease) + 60000
for i = 2, 5 do
  redis.call('PEXPIRE', KEYS[i], keep)
end

local ahead = redis.call('ZRANK', KEYS[2], ticket)
if ahead < max - redis.call('ZCARD', KEYS[1]) then
  redis.call('ZADD', KEYS[1], now + lease, id)
  -- Kept until a second after the longest lease in it, not this one's.
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + 1000)
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZREM', KEYS[3], ticket)
  local start = score % SPAN
  if start > clock then
    clock = start
    redis.call('HSET', KEYS[5], 'v', clock)
  end
  -- Flows whose last ticket the clock has reached are idle: forget them.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', clock)
  return {1, 0, n}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local lapse = -1
if first[2] then
  lapse = math.max(0, tonumber(first[2]) - now) + 1
end
return {0, ahead, n, lapse}
