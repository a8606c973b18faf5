-- Save a locked model, only while the lock is still held by this holder.
-- KEYS[1]: the lock key; KEYS[2]: the model key.
-- ARGV[1]: the holder's token; ARGV[2]: the document JSON; ARGV[3]: the model's expiry in
-- milliseconds, or 0 for none.
-- A lock that expired or was taken over is `LOCKLOST` and nothing is written.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST the lock expired or has another holder')
end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'ReJSON-RL' then
  return redis.error_reply('WRONGTYPE ' .. t)
end
redis.call('JSON.SET', KEYS[2], '$', ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
