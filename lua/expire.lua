-- Set or read a document's expiry, only if the key holds a JSON document.
-- KEYS[1]: the document's key. ARGV[1]: the expiry to set in milliseconds, or '' to read it.
-- Returns 1 when set, or the milliseconds left (-1: no expiry) when read. A missing key is
-- `NOTFOUND`, a key of another type `WRONGTYPE <type>`; neither is touched.
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  return redis.error_reply('NOTFOUND no document at this key')
end
if t ~= 'ReJSON-RL' then
  return redis.error_reply('WRONGTYPE ' .. t)
end
if ARGV[1] == '' then
  return redis.call('PTTL', KEYS[1])
end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
