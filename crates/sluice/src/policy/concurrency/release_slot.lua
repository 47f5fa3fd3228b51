-- Gives a level's shared concurrency slot back (concurrency/shared.rs) and,
-- when tickets wait in the level's line (take_slot.lua), tells the instances
-- which one is at its head, so that request tries at once instead of at its
-- next poll.
--
-- KEYS[1] slots: sorted set of slot id -> lease end (ms)
-- KEYS[2] line: sorted set of ticket -> order
-- ARGV[1] slot id, ARGV[2] the channel to publish the head ticket on
-- Returns the number of slots removed (0 when its lease had already ended).
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if head[1] then
  redis.call('PUBLISH', ARGV[2], head[1])
end
return removed
