-- Save whole documents with their structures' companion keys (sets, priority queues), all or
-- nothing, each with an optional expiry in the same step.
-- KEYS: for each document, its key, then its c companion keys.
-- ARGV[1]: expiry in milliseconds, or 0 for none; ARGV[2]: c; ARGV[3 .. 2 + c]: the Redis
-- type each companion key holds (set, zset, hash) and ARGV[3 + c .. 2 + 2c] the JSONPath of
-- its structure; then for each document: its JSON text, then for each companion key the
-- number n of arguments that fill it and those n arguments (a set's members; a sorted set's
-- score and member pairs; a hash's field and value pairs).
-- Every key is checked before the first write: a document key holding anything but a JSON
-- document, or a companion key holding another Redis type, fails the whole call with a typed
-- failure (lua/lib/failure.lua, put before this script) naming it, and nothing is written.
-- A companion key is replaced whole and gets the document's expiry (a document saved without
-- one keeps the expiry it had, as JSON.SET does).
local c = tonumber(ARGV[2])
local per = c + 1
for d = 1, #KEYS, per do
  local refused = not_a_document(d, false)
  if refused then
    return refused
  end
  for j = 1, c do
    refused = not_a(d + j, ARGV[2 + j], ARGV[2 + c + j])
    if refused then
      return refused
    end
  end
end
local fill = { set = 'SADD', zset = 'ZADD', hash = 'HSET' }
local ttl = tonumber(ARGV[1])
local a = 3 + 2 * c
for d = 1, #KEYS, per do
  redis.call('JSON.SET', KEYS[d], '$', ARGV[a])
  a = a + 1
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[d], ttl)
  end
  local left = redis.call('PTTL', KEYS[d])
  for j = 1, c do
    local k = KEYS[d + j]
    redis.call('DEL', k)
    local n = tonumber(ARGV[a])
    a = a + 1
    -- In chunks: Lua's unpack has a limit of a few thousand values (chunks stay even, so a
    -- pair is never split).
    for from = a, a + n - 1, 1000 do
      redis.call(fill[ARGV[2 + j]], k, unpack(ARGV, from, math.min(from + 999, a + n - 1)))
    end
    a = a + n
    if left > 0 then
      redis.call('PEXPIRE', k, left)
    end
  end
end
return #KEYS / per
