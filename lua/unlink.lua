-- Delete documents with what their referrers' on_delete policies ask, all or nothing.
-- KEYS: first the referrers whose reference is set to null, then the documents to delete,
-- referrers before the documents they reference (the targets last).
-- ARGV[1]: how many null writes lead KEYS (n); then, for each, the JSONPath of the reference
-- and the id it must still hold (a reference changed since it was found is left alone).
-- Every key is checked before the first write: a key holding anything but a JSON document
-- fails the whole call with a typed failure (lua/lib/failure.lua, put before this script)
-- naming it, and nothing is written. A missing key is skipped.
-- Returns, for each document to delete, 1 when it was deleted and 0 when it was missing.
local refused = not_all_documents()
if refused then
  return refused
end
local n = tonumber(ARGV[1])
local nulls = {}
for i = 1, n do
  local path, id = ARGV[2 * i], ARGV[2 * i + 1]
  local now = redis.call('JSON.GET', KEYS[i], path)
  if now then
    local values = cjson.decode(now)
    if values[1] == id then
      nulls[#nulls + 1] = i
    end
  end
end
for _, i in ipairs(nulls) do
  redis.call('JSON.SET', KEYS[i], ARGV[2 * i], 'null')
end
local deleted = {}
for i = n + 1, #KEYS do
  deleted[#deleted + 1] = redis.call('DEL', KEYS[i])
end
return deleted
