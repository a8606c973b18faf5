-- rapyer's Lua library: a priority queue in its companion keys, a ZSET of entries (every
-- score 0) and a HASH from each item's member to its entry, whose field '' counts the
-- sequence numbers. An entry is 16 hex digits of the priority, 16 of a sequence number, then
-- the member: the ZSET's byte order is the queue's order, ties first in, first out. Put
-- before lua/structure.lua and lua/lock_save.lua (src/script/lua.rs).

-- Queues `member` at the back of the priority whose 16 hex digits are `priority`, out of the
-- place it had.
local function queue_push(zset, index, priority, member)
  local old = redis.call('HGET', index, member)
  if old then
    redis.call('ZREM', zset, old)
  end
  local seq = redis.call('HINCRBY', index, '', 1) - 1
  local entry = priority .. string.format('%016x', seq) .. member
  redis.call('ZADD', zset, 0, entry)
  redis.call('HSET', index, member, entry)
end

-- Takes `member` out of the queue; whether it was queued.
local function queue_remove(zset, index, member)
  local entry = redis.call('HGET', index, member)
  if not entry then
    return false
  end
  redis.call('ZREM', zset, entry)
  redis.call('HDEL', index, member)
  return true
end

-- Drops an emptied queue's index (and its sequence counter) with it.
local function queue_tidy(zset, index)
  if redis.call('ZCARD', zset) == 0 then
    redis.call('DEL', index)
  end
end
