-- Set the expiry of documents, all or nothing: only keys that hold a JSON document.
-- KEYS: the documents' keys. ARGV[1]: the expiry in milliseconds.
-- Every key is checked first: a key holding anything but a JSON document fails the whole
-- call with a typed failure (lua/lib/failure.lua, put before this script) naming it; a
-- missing key is skipped. Returns how many expiries were set.
local refused = not_all_documents()
if refused then
  return refused
end
local set = 0
for i = 1, #KEYS do
  set = set + redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return set
