-- Set or read a document's expiry, only if the key holds a JSON document.
-- KEYS[1]: the document's key. ARGV[1]: the expiry to set in milliseconds, or '' to read it.
-- Returns 1 when set, or the milliseconds left (-1: no expiry) when read. A missing key or
-- a key of another type is a typed failure (lua/lib/failure.lua, put before this script);
-- neither is touched.
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  return failure('notfound', 0, 1, '$')
end
if t ~= 'ReJSON-RL' then
  return failure('wrongtype', 0, 1, '$', t)
end
if ARGV[1] == '' then
  return redis.call('PTTL', KEYS[1])
end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
