-- Save what a lock holder changed, only while the lock is still held by this holder.
-- KEYS[1]: the lock key; KEYS[2]: the model key.
-- ARGV[1]: the holder's token; ARGV[2]: the model's expiry in milliseconds, or 0 for none;
-- ARGV[3]: 'whole' or 'changes'.
--   whole: ARGV[4] is the whole document, written at the root.
--   changes: from ARGV[4] on, one triple per changed member: the JSONPath of the object
--   holding it, the member's JSONPath, and its JSON (empty to delete the member). Paths are
--   built only from plainly safe names; the members of the triples never overlap.
-- Returns how many places it wrote (0: nothing changed, nothing written, expiry untouched),
-- or -1 when the changes cannot be placed (the document is gone, or an object holding a
-- change is not an object any more): nothing is written, and the caller saves it whole.
-- A lock that expired or was taken over is `LOCKLOST` and nothing is written; a key of
-- another type is a typed failure (lua/lib/failure.lua, put before this script).
-- Everything is checked before the first write.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST the lock expired or has another holder')
end
local whole = ARGV[3] == 'whole'
if not whole and #ARGV < 4 then
  return 0
end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'ReJSON-RL' then
  return failure('wrongtype', 0, 2, '$', t)
end
local written = 1
if whole then
  redis.call('JSON.SET', KEYS[2], '$', ARGV[4])
else
  if t == 'none' then
    return -1
  end
  for i = 4, #ARGV, 3 do
    local holder = redis.call('JSON.TYPE', KEYS[2], ARGV[i])
    if holder[1] ~= 'object' then
      return -1
    end
  end
  for i = 4, #ARGV, 3 do
    if ARGV[i + 2] == '' then
      redis.call('JSON.DEL', KEYS[2], ARGV[i + 1])
    else
      redis.call('JSON.SET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    end
  end
  written = (#ARGV - 3) / 3
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return written
