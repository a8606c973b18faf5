-- Save whole documents, all or nothing, each with an optional expiry in the same step.
-- KEYS: the documents' keys.
-- ARGV[1]: expiry in milliseconds, or 0 for none; ARGV[1 + i]: the JSON text for KEYS[i].
-- Every key is checked before the first write: a key holding anything but a JSON document
-- fails the whole call with `WRONGTYPE <index> <type>` and nothing is written.
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= 'ReJSON-RL' then
    return redis.error_reply('WRONGTYPE ' .. i .. ' ' .. t)
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
