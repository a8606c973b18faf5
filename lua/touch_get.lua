-- Read documents and re-arm their expiry in the same step (models with refresh_on_read).
-- KEYS: the documents' keys. ARGV[1]: the expiry in milliseconds. ARGV[2..]: JSONPaths to
-- read instead of the whole document (partial reads; JSON.GET's reply for them).
-- Returns, for each key, the document's JSON, or nil when the key is missing or holds
-- another type (which is left untouched), like JSON.MGET.
local out = {}
for i = 1, #KEYS do
  if redis.call('TYPE', KEYS[i])['ok'] == 'ReJSON-RL' then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    out[i] = redis.call('JSON.GET', KEYS[i], unpack(ARGV, 2))
  else
    out[i] = false
  end
end
return out
