-- Set or read a document's expiry, only if the key holds a JSON document.
-- KEYS[1]: the document's key, then its structures' companion keys. ARGV[1]: the expiry to set in milliseconds, or '' to read it.
-- Returns 1 when set, or the milliseconds left (-1: no expiry) when read. A missing key or
-- a key of another type is a typed failure (lua/lib/failure.lua, put before this script);
-- neither is touched.
local refused = not_a_document(1, true)
if refused then
  return refused
end
if ARGV[1] == '' then
  return redis.call('PTTL', KEYS[1])
end
-- KEYS[2..]: the document's structures' companion keys, which expire with it.
for i = 2, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
