-- The fast paths of the commonest field operations. A field script whose operation has one
-- here runs `fast_<name>` first: it does what op_<name> of lua/field.lua does in the usual
-- case (the field present, of the wanted type, the result in range) with the fewest server
-- calls and no helper functions, and returns the same reply. In every other case it returns
-- nil having written nothing, and the script goes on to the whole operation of lua/field.lua
-- (its checks and typed failures), whose functions it creates only then.
-- Why: each function a script defines is created again on every call. The whole path of an
-- increment defines about twenty; measured with redis-benchmark (4 connections x 16
-- pipelined, this server), the fast path ran 1.4-1.5x as many increments per second, and
-- 1.15-1.2x more again once the whole path's functions were left uncreated when it succeeds
-- and the write became one JSON.NUMINCRBY.
-- The call's KEYS and ARGV are those of lua/field.lua (ARGV[1] the path, ARGV[2] the wanted
-- JSON types, ARGV[3] the expiry to re-arm in milliseconds or '0', ARGV[4..] the operands),
-- read here as K[KO + 1 .. KO + NK] and A[AO + 1 .. AO + NA]: locals the script sets first
-- (src/script/lua.rs), to KEYS and ARGV with no offset for one call, and in a script of
-- several gathered calls to all the calls' keys and arguments, each call's offsets set
-- before its fast path runs, so no table is built for a call the fast path does.

-- Re-arms the expiry on the document and its companion keys, as FIELD does.
local function renew()
  local ttl = A[AO + 3]
  if ttl ~= '0' then
    for i = KO + 1, KO + NK do
      redis.call('PEXPIRE', K[i], ttl)
    end
  end
end

-- The field's value (JSON.GET) when its text matches `pattern` (which captures the number),
-- or nil.
local function number_at(pattern)
  local done, text = pcall(redis.call, 'JSON.GET', K[KO + 1], A[AO + 1])
  return done and text and string.match(text, pattern)
end

-- Adds the operand to the field with JSON.NUMINCRBY once an increment's checks have passed,
-- re-arms the expiry, and returns the reply (the new value, as `[value]`).
local function add_checked()
  local reply = redis.call('JSON.NUMINCRBY', K[KO + 1], A[AO + 1], A[AO + 4])
  renew()
  return reply
end

-- An exact integer increment whose operand, field and result are below 10^15 in magnitude
-- (exact as doubles): the field read and the result range-checked first, then the bare
-- JSON.NUMINCRBY, whose reply is the new value. A larger operand or value, a float, anything
-- else: the whole path (string arithmetic over the full range of the field's type). (The
-- script is refused as a whole over the memory limit, src/script/lua.rs, so that
-- JSON.NUMINCRBY is not flagged denyoom lets nothing through.)
local function fast_incr()
  local n = number_at('^%[(%-?%d+)%]$')
  if not n or #n > 15 or #A[AO + 4] > 15 then
    return nil
  end
  -- A bound of 17 characters or more is beyond 10^15 in magnitude, so beyond any such
  -- result: only the shorter bounds of the narrower types are read (a bound beyond 2^53
  -- rounds, but never across a value below 2*10^15).
  local v, lowest, highest = tonumber(n) + tonumber(A[AO + 4]), A[AO + 5], A[AO + 6]
  if (#lowest < 17 and v < tonumber(lowest)) or (#highest < 17 and v > tonumber(highest)) then
    return nil
  end
  return add_checked()
end

-- A float increment: the field read, the result checked finite and within the float type,
-- then JSON.NUMINCRBY, as the whole path does (it computes the same double, and writes it as
-- RedisJSON writes floats).
local function fast_fincr()
  local x = number_at('^%[(%-?%d[%d.eE+-]*)%]$')
  x = x and tonumber(x)
  if not x then
    return nil
  end
  local v, highest = x + tonumber(A[AO + 4]), tonumber(A[AO + 5])
  if v ~= v or v > highest or v < -highest then
    return nil
  end
  return add_checked()
end

-- The field's JSON type checked with JSON.TYPE, then JSON.SET; the reply is the value sent
-- (what reading it back would decode to).
local function fast_set()
  local done, types = pcall(redis.call, 'JSON.TYPE', K[KO + 1], A[AO + 1])
  local found = done and types and types[1]
  local want = A[AO + 2]
  if not found or (want ~= '*' and not string.find(want, found, 1, true)) then
    return nil
  end
  if not redis.call('JSON.SET', K[KO + 1], A[AO + 1], A[AO + 4]) then
    return nil
  end
  renew()
  return '[' .. A[AO + 4] .. ']'
end

-- Reads the field, of the wanted JSON type.
local function fast_get()
  local done, text = pcall(redis.call, 'JSON.GET', K[KO + 1], A[AO + 1])
  if not done or not text then
    return nil
  end
  local want = A[AO + 2]
  if want ~= '*' then
    local c = string.byte(text, 2)
    -- Only the common single types; any other wanted type takes the whole path.
    local ok = (want == 'string' and c == 34) or (want == 'array' and c == 91)
      or (want == 'object' and c == 123) or (want == 'boolean' and (c == 116 or c == 102))
    if not ok then
      return nil
    end
  end
  renew()
  return text
end

-- JSON.STRAPPEND writes nothing where it would fail (no key, no field, not a string), so it
-- is the check; the reply is the string afterwards.
local function fast_append()
  local done, lengths = pcall(redis.call, 'JSON.STRAPPEND', K[KO + 1], A[AO + 1], A[AO + 4])
  if not done or not lengths[1] then
    return nil
  end
  renew()
  return redis.call('JSON.GET', K[KO + 1], A[AO + 1])
end

-- JSON.TOGGLE likewise.
local function fast_toggle()
  local done, values = pcall(redis.call, 'JSON.TOGGLE', K[KO + 1], A[AO + 1])
  if not done or not values[1] then
    return nil
  end
  renew()
  return values[1] == 1 and '[true]' or '[false]'
end

-- JSON.ARRAPPEND likewise, for one to 4,000 elements (the whole path appends more in runs).
local function fast_lappend()
  if NA < 4 or NA > 4003 then
    return nil
  end
  local done, lengths = pcall(redis.call, 'JSON.ARRAPPEND', K[KO + 1], A[AO + 1], unpack(A, AO + 4, AO + NA))
  if not done or not lengths[1] then
    return nil
  end
  renew()
  return {lengths[1]}
end
