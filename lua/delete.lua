-- Delete documents, all or nothing: only keys that hold a JSON document.
-- KEYS: the documents' keys (a key may repeat; a missing key counts nothing).
-- Every key is checked before the first delete: a key holding anything but a JSON document
-- fails the whole call with a typed failure (lua/lib/failure.lua, put before this script)
-- naming it, and nothing is deleted.
-- Returns how many documents were deleted.
for i = 1, #KEYS do
  local refused = not_a_document(i, false)
  if refused then
    return refused
  end
end
local deleted = 0
for i = 1, #KEYS do
  deleted = deleted + redis.call('DEL', KEYS[i])
end
return deleted
