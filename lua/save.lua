-- Save whole documents, all or nothing, each with an optional expiry in the same step.
-- KEYS: the documents' keys.
-- ARGV[1]: expiry in milliseconds, or 0 for none; ARGV[1 + i]: the JSON text for KEYS[i].
-- Every key is checked before the first write: a key holding anything but a JSON document
-- fails the whole call with a typed failure (lua/lib/failure.lua, put before this script)
-- naming it, and nothing is written.
for i = 1, #KEYS do
  local refused = not_a_document(i, false)
  if refused then
    return refused
  end
end
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('JSON.SET', KEYS[i], '$', ARGV[i + 1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return #KEYS
