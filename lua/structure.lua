-- One operation on a special structure of a stored model (a set, a priority queue), kept in
-- companion keys beside the document: the document checked first (it must exist, as for
-- every field operation), then the companion keys' types, then the operation; the expiry
-- re-armed on the document and every companion key in the same step.
-- KEYS[1]: the document's key; KEYS[2 .. 1 + c]: every companion key of its structures;
-- for the set algebra, KEYS[2 + c]: the other model's document and KEYS[3 + c]: its set.
-- ARGV[1]: the operation; ARGV[2]: c; ARGV[3]: an expiry in milliseconds to re-arm, or 0;
-- ARGV[4]: the structure's JSONPath (for failures); ARGV[5]: the index in KEYS of its first
-- companion key (a queue's ZSET is followed by its HASH); ARGV[6..]: the operands.
-- Set operations: sadd, srem (members), sismember (a member), scard, spop, smembers, sclear,
-- sstore (SUNIONSTORE, SINTERSTORE or SDIFFSTORE; the other set's JSONPath).
-- Queue operations (entries as lua/lib/queue.lua writes them): qpush (pairs of the
-- priority's hex digits and a member), qpop (how many), qpeek, qlen, qremove (a member),
-- qitems, qclear.
-- Errors: typed failures (lua/lib/failure.lua): notfound, wrongtype (the document), type (a
-- companion key of another Redis type).
local op, c, ttl, path, s = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
  tonumber(ARGV[5])

local refused = not_a_document(1, true)
if refused then
  return refused
end
if op:sub(1, 1) == 's' then
  refused = not_a(s, 'set', path)
else
  refused = not_a(s, 'zset', path) or not_a(s + 1, 'hash', path)
end
if refused then
  return refused
end

local set, zset, index = KEYS[s], KEYS[s], KEYS[s + 1]


local function pop(n)
  local out = {}
  local popped = redis.call('ZPOPMIN', zset, n)
  for i = 1, #popped, 2 do
    redis.call('HDEL', index, popped[i]:sub(33))
    out[#out + 1] = popped[i]
  end
  queue_tidy(zset, index)
  return out
end

-- `cmd` on the set with every member from ARGV[6], in chunks (Lua's unpack has a limit of a
-- few thousand values); the sum of its replies and the set's size afterwards.
local function members(cmd)
  local n = 0
  for from = 6, #ARGV, 1000 do
    n = n + redis.call(cmd, set, unpack(ARGV, from, math.min(from + 999, #ARGV)))
  end
  return { n, redis.call('SCARD', set) }
end

local result
if op == 'sadd' then
  result = members('SADD')
elseif op == 'srem' then
  result = members('SREM')
elseif op == 'sismember' then
  result = { redis.call('SISMEMBER', set, ARGV[6]) }
elseif op == 'scard' then
  result = { redis.call('SCARD', set) }
elseif op == 'spop' then
  result = { redis.call('SPOP', set) }
elseif op == 'smembers' then
  result = redis.call('SMEMBERS', set)
elseif op == 'sclear' then
  result = { redis.call('DEL', set) }
elseif op == 'sstore' then
  local other = 2 + c
  refused = not_a_document(other, true) or not_a(other + 1, 'set', ARGV[7])
  if refused then
    return refused
  end
  redis.call(ARGV[6], set, set, KEYS[other + 1])
  result = redis.call('SMEMBERS', set)
elseif op == 'qpush' then
  for i = 6, #ARGV, 2 do
    queue_push(zset, index, ARGV[i], ARGV[i + 1])
  end
  result = { redis.call('ZCARD', zset) }
elseif op == 'qpop' then
  result = pop(tonumber(ARGV[6]))
elseif op == 'qpeek' then
  result = redis.call('ZRANGE', zset, 0, 0)
elseif op == 'qlen' then
  result = { redis.call('ZCARD', zset) }
elseif op == 'qremove' then
  result = { 0 }
  if queue_remove(zset, index, ARGV[6]) then
    queue_tidy(zset, index)
    result[1] = 1
  end
elseif op == 'qitems' then
  result = redis.call('ZRANGE', zset, 0, -1)
elseif op == 'qclear' then
  result = { redis.call('DEL', zset, index) }
else
  return redis.error_reply('unknown structure operation ' .. op)
end

-- Every companion key expires with the document: re-armed with it, or given what it has left
-- (a companion key an operation just created has no expiry of its own yet).
if ttl > 0 then
  for i = 1, 1 + c do
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
else
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then
    for i = 2, 1 + c do
      redis.call('PEXPIRE', KEYS[i], left)
    end
  end
end
return result
