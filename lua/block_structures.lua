-- Special structures in blocks (after lua/block.lua, cut into pieces with it): sets and
-- priority queues, kept in companion keys beside their documents (src/structures.rs).
--
-- A block's companion keys follow its documents in KEYS; the expiry slots of a companion key
-- (ARGV[2i - 1], ARGV[2i]) hold '#d#type#path' (its document's number in KEYS, its Redis
-- type, its structure's JSONPath) and '0', so the runtime's expiry loop leaves it alone.
-- Operations read the server (and what the block did before them) and only queue their
-- writes; the block's last statement, op_sflush (added by the compiler to every block that
-- names a model with structures), runs them in order once every operation has passed, then
-- gives every companion key its document's expiry.

-- The companion keys, by '#d#type#path'; filled on first use.
local COMP

-- The writes queued, in order: each a command and its arguments.
local SWRITES = {}

-- What the block did to each set (member -> true when added, false when removed; and how
-- many members it gained, less those it lost) and queue (entries added, entries gone, the
-- next sequence number), so that later operations see it.
local SSEEN, SGROWN, QSEEN = {}, {}, {}

-- The companion keys' table, filled on first use.
local function comp()
  if not COMP then
    COMP = {}
    for i = 1, #KEYS do
      local d, ty, p = string.match(ARGV[2 * i - 1], '^#(%d+)#(%a+)#(.*)$')
      if d then
        COMP[d .. '#' .. ty .. '#' .. p] = i
      end
    end
  end
  return COMP
end

-- The companion key of type t of the structure at path, whose field is at loc (checked
-- to be in a stored document); a key of another Redis type fails naming loc.
local function companion(loc, t, path)
  get(loc, '*')
  local i = comp()[ROOTS[loc.root].key .. '#' .. t .. '#' .. path]
  if not i then
    error('no companion key for the structure at ' .. path, 0)
  end
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= t and found ~= 'none' then
    fail('type', loc, t, found)
  end
  return KEYS[i]
end

local function swrite(...)
  SWRITES[#SWRITES + 1] = { ... }
end

-- Whether the set at key holds member, after what the block did.
local function s_has(key, member)
  local seen = SSEEN[key]
  if seen and seen[member] ~= nil then
    return seen[member]
  end
  return redis.call('SISMEMBER', key, member) == 1
end

-- Adds member to (now true) or removes it from (now false) the set at the place loc, at
-- path, when it is not already so; returns whether it changed.
local function s_put(loc, path, member, now)
  local key = companion(loc, 'set', path)
  if s_has(key, member) == now then
    return 'false'
  end
  SSEEN[key] = SSEEN[key] or {}
  SSEEN[key][member] = now
  SGROWN[key] = (SGROWN[key] or 0) + (now and 1 or -1)
  swrite(now and 'SADD' or 'SREM', key, member)
  return 'true'
end

local function op_sadd(loc, path, member)
  return s_put(loc, path, member, true)
end

local function op_srem(loc, path, member)
  return s_put(loc, path, member, false)
end

-- The queue at loc: its ZSET, its HASH and what the block did to it.
local function queue(loc, path)
  local z = companion(loc, 'zset', path)
  local h = companion(loc, 'hash', path)
  local q = QSEEN[z]
  if not q then
    q = { z = z, h = h, fresh = {}, gone = {}, seq = tonumber(redis.call('HGET', h, '') or '0'),
      n = redis.call('ZCARD', z) }
    QSEEN[z] = q
  end
  return q
end

-- The entry the queue q holds for member, after what the block did, or nil.
local function q_entry(q, member)
  for i, e in ipairs(q.fresh) do
    if string.sub(e, 33) == member then
      return e, i
    end
  end
  local e = redis.call('HGET', q.h, member)
  if e and not q.gone[e] then
    return e
  end
  return nil
end

local function q_drop(q, member)
  local e, fresh = q_entry(q, member)
  if fresh then
    table.remove(q.fresh, fresh)
  elseif e then
    q.gone[e] = true
  end
  if e then
    swrite('ZREM', q.z, e)
  end
  if e then
    q.n = q.n - 1
    swrite('HDEL', q.h, member)
  end
end

local function op_qpush(loc, path, priority, member)
  local q = queue(loc, path)
  q_drop(q, member)
  local e = priority .. string.format('%016x', q.seq) .. member
  q.seq = q.seq + 1
  local at = #q.fresh + 1
  for i, f in ipairs(q.fresh) do
    if bytes_cmp(e, f) < 0 then
      at = i
      break
    end
  end
  table.insert(q.fresh, at, e)
  q.n = q.n + 1
  swrite('ZADD', q.z, 0, e)
  swrite('HSET', q.h, member, e, '', q.seq)
  return tostring(q.n)
end

-- Removes member from the queue at loc, whatever its priority; returns whether it was
-- queued.
local function op_qremove(loc, path, member)
  local q = queue(loc, path)
  if not q_entry(q, member) then
    return 'false'
  end
  q_drop(q, member)
  return 'true'
end

-- Removes the most urgent entry of the queue at loc; returns it, or nil when empty.
local function q_pop(loc, path)
  local q = queue(loc, path)
  -- The server's first entry the block has not removed.
  local i, head = 0, nil
  repeat
    head = redis.call('ZRANGE', q.z, i, i)[1]
    i = i + 1
  until not head or not q.gone[head]
  local f = q.fresh[1]
  if f and (not head or bytes_cmp(f, head) < 0) then
    head = f
  end
  if head then
    q_drop(q, string.sub(head, 33))
  end
  return head
end

-- An entry as the JSON of [item, priority]. The priority's 16 hex digits, sign bit flipped,
-- are an i64, beyond a double's 53 bits: it is written from its two 32-bit halves, exactly,
-- with the decimal arithmetic of lua/lib/decimal.lua.
local function entry_json(e)
  local hi = tonumber(string.sub(e, 1, 8), 16) - 2147483648
  local lo = tonumber(string.sub(e, 9, 16), 16)
  local p = sum(product(string.format('%.0f', hi), '4294967296'), string.format('%.0f', lo))
  return '[' .. string.sub(e, 33) .. ',' .. p .. ']'
end

local function op_qpop(loc, path)
  local e = q_pop(loc, path)
  return e and entry_json(e) or 'null'
end

-- Pops the most urgent item into the end of the list at list_loc.
local function op_qpop_into(loc, path, list_loc)
  local e = q_pop(loc, path)
  if not e then
    list_at(list_loc)
    return 'null'
  end
  append_vals(list_loc.root, list_at(list_loc), json_vals('[' .. string.sub(e, 33) .. ']'))
  return entry_json(e)
end

-- Copies every structure of the document at from onto the document at to.
local function op_scopy(from, to)
  get(from, 'object')
  local a, b = ROOTS[from.root].key, ROOTS[to.root].key
  for name, i in pairs(comp()) do
    local d, rest = string.match(name, '^(%d+)(#.*)$')
    if tonumber(d) == a then
      local j = COMP[b .. rest]
      if j then
        swrite('DEL', KEYS[j])
        swrite('COPY', KEYS[i], KEYS[j])
      end
    end
  end
  return 'null'
end

-- A condition's operand about a structure: 'scard', 'sismember' (a member) or 'zcard', on
-- the structure at a place and path; its answer as JSON.
local function SQUERY()
  local loc = read_loc(NX())
  local query, path, arg = NX(), NX(), NX()
  if query == 'sismember' then
    return tostring(s_has(companion(loc, 'set', path), arg))
  elseif query == 'zcard' then
    return tostring(queue(loc, path).n)
  end
  -- A member the block added was not in the set before, one it removed was.
  local key = companion(loc, 'set', path)
  return tostring(redis.call('SCARD', key) + (SGROWN[key] or 0))
end

-- The block's last statement: the queued writes, then every companion key given its
-- document's expiry (re-armed as the document will be, or what it has left, or none).
local function op_sflush()
  for _, w in ipairs(SWRITES) do
    if w[1] == 'COPY' then
      if redis.call('EXISTS', w[2]) == 1 then
        redis.call('COPY', w[2], w[3], 'REPLACE')
      end
    else
      redis.call(unpack(w))
    end
  end
  for _, q in pairs(QSEEN) do
    if redis.call('ZCARD', q.z) == 0 then
      redis.call('DEL', q.h)
    end
  end
  local dirty = {}
  for _, rt in ipairs(ROOTS) do
    if rt.dirty then
      dirty[rt.key] = true
    end
  end
  for i = 1, #KEYS do
    local d = tonumber(string.match(ARGV[2 * i - 1], '^#(%d+)#'))
    if d then
      local ttl = dirty[d] and ARGV[2 * d - 1] or ARGV[2 * d]
      if ttl ~= '0' then
        redis.call('PEXPIRE', KEYS[i], ttl)
      else
        local left = redis.call('PTTL', KEYS[d])
        if left > 0 then
          redis.call('PEXPIRE', KEYS[i], left)
        else
          redis.call('PERSIST', KEYS[i])
        end
      end
    end
  end
  return 'null'
end
