-- Delete documents, all or nothing: only keys that hold a JSON document.
-- KEYS: the documents' keys (a key may repeat; a missing key counts nothing), each followed
-- by ARGV[1] (0 when absent) companion keys of its structures, deleted with it.
-- Every document key is checked before the first delete: a key holding anything but a JSON
-- document fails the whole call with a typed failure (lua/lib/failure.lua, put before this
-- script) naming it, and nothing is deleted.
-- Returns how many documents were deleted.
local per = 1 + (tonumber(ARGV[1]) or 0)
for i = 1, #KEYS, per do
  local refused = not_a_document(i, false)
  if refused then
    return refused
  end
end
local deleted = 0
for i = 1, #KEYS, per do
  deleted = deleted + redis.call('DEL', KEYS[i])
  for j = i + 1, i + per - 1 do
    redis.call('DEL', KEYS[j])
  end
end
return deleted
