-- Save what a lock holder changed, only while the lock is still held by this holder.
-- KEYS[1]: the lock key; KEYS[2]: the model key; KEYS[3..]: the companion keys of the sets
-- and queues this holder changed.
-- ARGV[1]: the holder's token; ARGV[2]: the model's expiry in milliseconds, or 0 for none;
-- ARGV[3]: 'whole' or 'changes'; ARGV[4]: how many arguments the structure changes take
-- (n), and ARGV[5 .. 4 + n] those changes: for each set or queue this holder changed, 's' or
-- 'q', the index in KEYS of its first companion key (a queue's ZSET, its HASH after it), its
-- JSONPath, the number of members removed and those members, then the number of members
-- added and those (a queue's: pairs of the priority's 16 hex digits and the member). Only
-- those members are written (SREM/SADD; a queue's entries as its push and remove write
-- them), so members others changed meanwhile keep their state.
-- From ARGV[5 + n] on, by ARGV[3]:
--   whole: the whole document, written at the root.
--   changes: one triple per changed member: the JSONPath of the object holding it, the
--   member's JSONPath, and its JSON (empty to delete the member). Paths are built only from
--   plainly safe names; the members of the triples never overlap.
-- Returns how many places it wrote (0: nothing changed, nothing written, expiry untouched),
-- or -1 when the changes cannot be placed (the document is gone, or an object holding a
-- change is not an object any more): nothing is written, and the caller saves it whole.
-- A lock that expired or was taken over is `LOCKLOST` and nothing is written; a key of
-- another type is a typed failure (lua/lib/failure.lua, put before this script, with
-- lua/lib/queue.lua).
-- Everything is checked before the first write.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST the lock expired or has another holder')
end
local whole = ARGV[3] == 'whole'
local n = tonumber(ARGV[4])
local first = 5 + n
-- The structure changes, read and their keys' types checked before any write.
local changes = {}
local at = 5
while at < first do
  local c = { kind = ARGV[at], k = tonumber(ARGV[at + 1]), path = ARGV[at + 2] }
  c.removed = at + 4
  c.nremoved = tonumber(ARGV[at + 3])
  c.nadded = tonumber(ARGV[c.removed + c.nremoved])
  c.added = c.removed + c.nremoved + 1
  at = c.added + c.nadded
  local refused
  if c.kind == 's' then
    refused = not_a(c.k, 'set', c.path)
  else
    refused = not_a(c.k, 'zset', c.path) or not_a(c.k + 1, 'hash', c.path)
  end
  if refused then
    return refused
  end
  changes[#changes + 1] = c
end
if not whole and #ARGV < first and #changes == 0 then
  return 0
end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'ReJSON-RL' then
  return failure('wrongtype', 0, 2, '$', t)
end
local written = 1
if whole then
  redis.call('JSON.SET', KEYS[2], '$', ARGV[first])
else
  if t == 'none' then
    return -1
  end
  for i = first, #ARGV, 3 do
    local holder = redis.call('JSON.TYPE', KEYS[2], ARGV[i])
    if holder[1] ~= 'object' then
      return -1
    end
  end
  for i = first, #ARGV, 3 do
    if ARGV[i + 2] == '' then
      redis.call('JSON.DEL', KEYS[2], ARGV[i + 1])
    else
      redis.call('JSON.SET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    end
  end
  written = (#ARGV - first + 1) / 3
end
for _, c in ipairs(changes) do
  local key = KEYS[c.k]
  if c.kind == 's' then
    for i = c.removed, c.removed + c.nremoved - 1 do
      redis.call('SREM', key, ARGV[i])
    end
    for i = c.added, c.added + c.nadded - 1 do
      redis.call('SADD', key, ARGV[i])
    end
  else
    local index = KEYS[c.k + 1]
    for i = c.removed, c.removed + c.nremoved - 1 do
      queue_remove(key, index, ARGV[i])
    end
    for i = c.added, c.added + c.nadded - 1, 2 do
      local priority, member = ARGV[i], ARGV[i + 1]
      local old = redis.call('HGET', index, member)
      -- Queued already at this priority (a handle on the guard pushed it): left in place.
      if not (old and string.sub(old, 1, 16) == priority) then
        queue_push(key, index, priority, member)
      end
    end
    queue_tidy(key, index)
  end
  written = written + 1
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  for i = 2, #KEYS do
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
else
  -- A companion key this save created gets what the document has left.
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then
    for i = 3, #KEYS do
      redis.call('PEXPIRE', KEYS[i], left)
    end
  end
end
return written
