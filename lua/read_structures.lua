-- Read documents with their structures' companion keys (sets, priority queues) in one step,
-- re-arming their expiry when asked (models with refresh_on_read).
-- KEYS: for each document, its key, then its c companion keys.
-- ARGV[1]: the expiry to re-arm in milliseconds, or 0; ARGV[2]: c; ARGV[3 .. 2 + c]: the
-- Redis type each companion key holds (set, zset, hash) and ARGV[3 + c .. 2 + 2c] the
-- JSONPath of its structure.
-- Returns, for each document, a row: the document's JSON, or false when the key is missing
-- or holds another type (which is left untouched), like JSON.MGET; then for each companion
-- key of a document, its contents: a set's members, a sorted set's members in order, nothing
-- for a hash (which only indexes the sorted set). A companion key of another type is a typed
-- failure (lua/lib/failure.lua, put before this script) naming it.
local c = tonumber(ARGV[2])
local ttl = tonumber(ARGV[1])
local out = {}
for d = 1, #KEYS, c + 1 do
  local row = { false }
  if redis.call('TYPE', KEYS[d])['ok'] == 'ReJSON-RL' then
    for j = 1, c do
      local refused = not_a(d + j, ARGV[2 + j], ARGV[2 + c + j])
      if refused then
        return refused
      end
    end
    row[1] = redis.call('JSON.GET', KEYS[d])
    for j = 0, c do
      if ttl > 0 then
        redis.call('PEXPIRE', KEYS[d + j], ttl)
      end
    end
    for j = 1, c do
      local t = ARGV[2 + j]
      if t == 'set' then
        row[j + 1] = redis.call('SMEMBERS', KEYS[d + j])
      elseif t == 'zset' then
        row[j + 1] = redis.call('ZRANGE', KEYS[d + j], 0, -1)
      else
        row[j + 1] = {}
      end
    end
  end
  out[#out + 1] = row
end
return out
