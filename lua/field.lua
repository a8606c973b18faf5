-- One operation on one field of a stored model: every check before the first write, the
-- expiry re-armed in the same step, and the field's new value returned. Each operation is a
-- top-level function op_<name>; the library registers one script per operation
-- (rapyer.field.<name>), holding only the pieces of this file and of lua/lib/ that the
-- operation and FIELD (the checks and the reply) use, cut as block scripts are
-- (src/script/lua/pieces.rs): a script defines little more than it runs.
-- KEYS[1]: the document's key; KEYS[2..]: its structures' companion keys (re-armed with it).
-- The operations: get, set, incr, mul (exact integers), fincr, fmul (floats), append
-- (strings), toggle (booleans), tadd, tset (RFC 3339 date-times); on lists: lappend, linsert,
-- lpop, lget, lset, lremove, lclear, ltrim, lslice, llen; on circular buffers: bpush; on
-- dicts: dset, ddel, dget, dkeys, dlen, dclear. Each is its own script, so the operation is not sent.
-- ARGV[1]: the field's JSONPath (one match, e.g. $.address.city).
-- ARGV[2]: the JSON types the field may hold, comma-separated (e.g. 'number,integer'), or '*'.
-- ARGV[3]: an expiry in milliseconds to re-arm on the document, or 0.
-- ARGV[4..]: the operands: set: the JSON value; incr, mul: the operand, the lowest and the
--            highest value of the field's integer type (decimal text); fincr, fmul: the
--            operand, then the largest finite value of the field's float type; append: the JSON string to append; tadd: whole seconds (may be
--            negative) and nanoseconds (0 to 999999999) to add, then the JSONPath of the
--            field's search shadow ('' when not indexed); tset: the JSON string, then the
--            shadow's JSONPath; lappend: the JSON elements (any number);
--            linsert: the index, the JSON element; lpop, lget: the index ('' for the last);
--            lset: the index, the JSON element; lremove: the JSON element; bpush: the
--            capacity, then the JSON elements (any number); ltrim, lslice: the
--            start and the stop ('' when omitted), with Python's meaning of negative indices;
--            dset: '1' to return each entry's value before or '0'; for the keys without a
--            step, the merge patch deleting those whose new value is an object, the merge
--            patch setting them, and the placeholder string written there for null ('' for
--            each when there is none); then for each entry three operands: its JSONPath
--            step ('' when the key cannot be a path step), its JSON value (used with a step)
--            and how to read its value before ('' with '0'): a JSONPath step, or the key as
--            JSON text when no step reads it; ddel, dget: the step ('' when none), the merge
--            patch deleting the entry (ddel), and how to read it.
-- Errors: typed failures (lua/lib/failure.lua): notfound; wrongtype (the key is not a
-- document); type (the field's JSON type is not one of ARGV[2], or the date-time text is
-- not RFC 3339); overflow (the result would leave the field's integer type, or a float
-- result is not finite or beyond the float type); index (a list index out of range).
-- The pieces of the shared library (lua/lib/*.lua) an operation uses are put before it
-- (src/script/lua.rs).
-- Returns the field's value afterwards as JSON text (a one-element array); list operations
-- return {the list's length afterwards, the element or elements involved as JSON text}; dict
-- operations return {the dict's size afterwards, then for each entry involved (none for dset
-- with '0') its value before as JSON text in a one-element array ('[]' when absent)}.

local key, path, want = KEYS[1], ARGV[1], ARGV[2]

-- Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms).
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end

-- An RFC 3339 text as wall-clock seconds since the epoch, nanoseconds, and its zone ('Z' or
-- '+hh:mm'); nil when it is not one.
local function parse_time(text)
  local y, mo, d, h, mi, sec, frac, zone = string.match(text,
    '^(%-?%d+)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$')
  if not y or not (zone == 'Z' or string.match(zone, '^[+-]%d%d:%d%d$')) then
    return nil
  end
  local secs = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  return secs, tonumber(string.sub(string.sub(frac, 2) .. '000000000', 1, 9)), zone
end

-- The text chrono writes for a wall-clock time: fraction digits 0, 3, 6 or 9, zone kept.
local function format_time(secs, nanos, zone)
  local days = math.floor(secs / 86400)
  local rest = secs - days * 86400
  local y, m, d = civil_from_days(days)
  local fraction = ''
  if nanos % 1000000 == 0 and nanos > 0 then
    fraction = string.format('.%03d', nanos / 1000000)
  elseif nanos % 1000 == 0 and nanos > 0 then
    fraction = string.format('.%06d', nanos / 1000)
  elseif nanos > 0 then
    fraction = string.format('.%09d', nanos)
  end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d', y, m, d,
    math.floor(rest / 3600), math.floor(rest % 3600 / 60), rest % 60) .. fraction .. zone
end

-- The instant of a wall-clock time in `zone`, in whole microseconds since the epoch: what the
-- search index stores for an indexed date-time (exact as a double until the year 2255).
local function instant_micros(secs, nanos, zone)
  local offset = 0
  if zone ~= 'Z' then
    local sign, hh, mm = string.match(zone, '^([+-])(%d%d):(%d%d)$')
    offset = tonumber(hh) * 3600 + tonumber(mm) * 60
    if sign == '-' then
      offset = -offset
    end
  end
  return (secs - offset) * 1000000 + math.floor(nanos / 1000)
end

local function out_of_range(i, len)
  return failure('index', 0, 1, path, i, len)
end

-- The JSON text of the member of the compact object text s whose key RedisJSON writes as
-- quoted (as serde_json does), or nil. One pass over the object, in the server (a nested
-- object may hold the same key: only the walk knows which member is the dict's own).
local function member(s, quoted)
  -- A member's key follows '{' or ','; with no such occurrence anywhere (plain finds, memchr
  -- speed), the key is absent and the walk below is not needed.
  local needle, at, seen = quoted .. ':', 1, false
  while true do
    local q = string.find(s, needle, at, true)
    if not q then
      break
    end
    local b = string.byte(s, q - 1)
    if b == 123 or b == 44 then
      seen = true
      break
    end
    at = q + 1
  end
  if not seen then
    return nil
  end
  local i = 2
  while true do
    local e = skip(s, i)
    local ve = skip(s, e + 2)
    if e - i + 1 == #quoted and string.sub(s, i, e) == quoted then
      return string.sub(s, e + 2, ve)
    end
    if string.byte(s, ve + 1) == 125 then
      return nil
    end
    i = ve + 2
  end
end

-- A dict entry's value as JSON text in a one-element array ('[]' when absent), found by
-- `read`: a JSONPath step (reads take the escapes \" and \\, which writes do not), or, for a
-- key no step reads (one starting with a space, which the path parser drops), the key as
-- JSON text, looked up in the dict's text (read once).
local dict_text
local function entry(read)
  if string.byte(read, 1) == 91 then
    return redis.call('JSON.GET', key, path .. read)
  end
  if not dict_text then
    dict_text = string.sub(redis.call('JSON.GET', key, path), 2, -2)
  end
  local v = member(dict_text, read)
  if v then
    return '[' .. v .. ']'
  end
  return '[]'
end

-- The checks before an operation, which return what they read, or nil and the failure.

-- The failure after the first command on the field: it erred (`done` false: the key holds
-- another Redis type, only then is TYPE asked, to name it) or answered nil (no key); or nil.
local function absent(done, reply)
  if not done then
    return failure('wrongtype', 0, 1, '$', redis.call('TYPE', key)['ok'])
  end
  if not reply then
    return failure('notfound', 0, 1, '$')
  end
end

-- The failure when the field's JSON type `found` is not one of those wanted; or nil.
local function mistyped(found)
  if want ~= '*' and not string.find(',' .. want .. ',', ',' .. found .. ',', 1, true) then
    return failure('type', 0, 1, path, want, found)
  end
end

-- One call checks the key and the path: JSON.TYPE answers nil for a missing key and fails
-- for a key of another type. Returns the JSON type.
local function checked()
  local done, types = pcall(redis.call, 'JSON.TYPE', key, path)
  local found = types and types[1] or 'nothing'
  local failed = absent(done, types) or mistyped(found)
  if failed then
    return nil, failed
  end
  return found
end

-- The checks of the operations that read the field anyway, in that one read: JSON.GET fails,
-- answers nil or answers the value, whose JSON type its text tells (json_type). Returns the
-- reply (the value in a one-element array).
local function checked_read()
  local done, text = pcall(redis.call, 'JSON.GET', key, path)
  local failed = absent(done, text)
  if failed then
    return nil, failed
  end
  if want == '*' then
    return text
  end
  failed = mistyped(json_type(text, 2))
  if failed then
    return nil, failed
  end
  return text
end

-- The number in a JSON.GET reply.
local function number_in(text)
  return string.sub(text, 2, -2)
end

-- No check before the one command of an operation that writes nothing where it would fail
-- (the command errs for a missing key or one of another type, and answers no match or nil
-- for a field of another JSON type): the checks run after it only then, to say why (see
-- refused).
local function afterwards()
  return true
end

-- Which check an operation starts with, when not `checked`: the entry point is called as
-- FIELD(op_<name>, check_<name> or checked) (src/script/lua.rs).
local check_get, check_incr, check_mul, check_fincr, check_fmul = checked_read, checked_read,
  checked_read, checked_read, checked_read
local check_append, check_toggle, check_lappend = afterwards, afterwards, afterwards
local check_bpush = afterwards

-- The failure the checks find after a command that wrote nothing, else the command's own
-- error `err` (when it erred).
local function refused(err)
  local _, failed = checked()
  return nil, nothing_done(failed, err, path)
end

-- Each operation takes what its check read and returns its reply (nil: the field's value,
-- read after the write), or nil and the failure when it refuses (before any write).

local function op_get(text)
  return text
end

-- The reply is the value sent (what reading it back would decode to), unless JSON.SET wrote
-- nothing (a missing parent): then the field is read back, and is absent.
local function op_set()
  if redis.call('JSON.SET', key, path, ARGV[4]) then
    return '[' .. ARGV[4] .. ']'
  end
end

-- An exact integer result, range-checked before the write; it is the reply (no need to read
-- it back).
local function exact(value)
  if cmp(value, ARGV[5]) < 0 or cmp(value, ARGV[6]) > 0 then
    return nil, failure('overflow', 0, 1, path, ARGV[5], ARGV[6])
  end
  redis.call('JSON.SET', key, path, value)
  return '[' .. value .. ']'
end

local function op_incr(text)
  return exact(sum(number_in(text), ARGV[4]))
end

local function op_mul(text)
  return exact(product(number_in(text), ARGV[4]))
end

-- RedisJSON computes in doubles as Lua does, so the same result is checked first: it refuses
-- an infinite one with an untyped error and stores an f32 past f32::MAX.
local function float_op(value, command)
  local highest = tonumber(ARGV[5])
  if value ~= value or value > highest or value < -highest then
    return nil, failure('overflow', 0, 1, path, '-' .. ARGV[5], ARGV[5])
  end
  return redis.call(command, key, path, ARGV[4])
end

local function op_fincr(text)
  return float_op(tonumber(number_in(text)) + tonumber(ARGV[4]), 'JSON.NUMINCRBY')
end

local function op_fmul(text)
  return float_op(tonumber(number_in(text)) * tonumber(ARGV[4]), 'JSON.NUMMULTBY')
end

local function op_append()
  local done, lengths = pcall(redis.call, 'JSON.STRAPPEND', key, path, ARGV[4])
  if not done or not lengths[1] then
    return refused(lengths)
  end
end

local function op_toggle()
  local done, values = pcall(redis.call, 'JSON.TOGGLE', key, path)
  if not done or not values[1] then
    return refused(values)
  end
  -- The new value, as JSON.GET would answer it.
  return values[1] == 1 and '[true]' or '[false]'
end

local function not_a_time()
  return failure('type', 0, 1, path, want, 'string that is not an RFC 3339 date-time')
end

-- Writes the search instant of a date-time at the field's shadow path ('' when not indexed).
local function shadow_instant(shadow, secs, nanos, zone)
  if shadow ~= '' then
    redis.call('JSON.SET', key, shadow, string.format('%.0f', instant_micros(secs, nanos, zone)))
  end
end

local function op_tadd()
  local secs, nanos, zone = parse_time(cjson.decode(redis.call('JSON.GET', key, path))[1])
  if not secs then
    return nil, not_a_time()
  end
  -- The offset stays as it is, so moving the wall-clock time moves the instant equally.
  secs, nanos = secs + tonumber(ARGV[4]), nanos + tonumber(ARGV[5])
  if nanos >= 1000000000 then
    nanos, secs = nanos - 1000000000, secs + 1
  end
  redis.call('JSON.SET', key, path, cjson.encode(format_time(secs, nanos, zone)))
  shadow_instant(ARGV[6], secs, nanos, zone)
end

local function op_tset()
  local secs, nanos, zone = parse_time(cjson.decode(ARGV[4]))
  if not secs then
    return nil, not_a_time()
  end
  redis.call('JSON.SET', key, path, ARGV[4])
  shadow_instant(ARGV[5], secs, nanos, zone)
end

local function length()
  return redis.call('JSON.ARRLEN', key, path)[1]
end

-- Appends ARGV[first..] (at least one JSON value) to the list; returns its new length, or nil
-- and the failure. In runs of 4,000: Lua's unpack refuses 8,000 values at once (runs of
-- 1,000 measured 50% slower on 100,000 items). The first run checks the key and the path (it
-- writes nothing where it fails), and the client refused values RedisJSON cannot parse, so
-- no run after the first can fail.
local function appended(first)
  local done, lengths = pcall(redis.call, 'JSON.ARRAPPEND', key, path,
    unpack(ARGV, first, math.min(first + 3999, #ARGV)))
  if not done or not lengths[1] then
    return refused(lengths)
  end
  local n = lengths[1]
  for i = first + 4000, #ARGV, 4000 do
    n = redis.call('JSON.ARRAPPEND', key, path, unpack(ARGV, i, math.min(i + 3999, #ARGV)))[1]
  end
  return n
end

local function op_lappend()
  if #ARGV < 4 then
    local _, failed = checked()
    if failed then
      return nil, failed
    end
    return {length()}
  end
  local n, failed = appended(4)
  if not n then
    return nil, failed
  end
  return {n}
end

local function op_linsert()
  local i = insert_at(ARGV[4], length())
  return {redis.call('JSON.ARRINSERT', key, path, i, ARGV[5])[1], tostring(i)}
end

-- The element ARGV[4] names ('' for the last) in a list of len elements, or nil and the
-- failure.
local function element(len)
  local i = len - 1
  if ARGV[4] ~= '' then
    i = index(ARGV[4], len)
  end
  if i == nil or i < 0 then
    return nil, out_of_range(ARGV[4] == '' and -1 or ARGV[4], len)
  end
  return i
end

local function op_lpop()
  local len = length()
  local i, failed = element(len)
  if not i then
    return nil, failed
  end
  return {len - 1, redis.call('JSON.ARRPOP', key, path, i)[1], tostring(i)}
end

local function op_lget()
  local len = length()
  local i, failed = element(len)
  if not i then
    return nil, failed
  end
  return {len, redis.call('JSON.GET', key, path .. '[' .. i .. ']'), tostring(i)}
end

local function op_lset()
  local len = length()
  local i = index(ARGV[4], len)
  if i == nil then
    return nil, out_of_range(ARGV[4], len)
  end
  redis.call('JSON.SET', key, path .. '[' .. i .. ']', ARGV[5])
  return {len, tostring(i)}
end

local function op_lremove()
  local len = length()
  local i = redis.call('JSON.ARRINDEX', key, path, ARGV[4])[1]
  if i >= 0 then
    redis.call('JSON.ARRPOP', key, path, i)
    return {len - 1, tostring(i)}
  end
  return {len}
end

local function op_lclear()
  redis.call('JSON.SET', key, path, '[]')
  return {0}
end

-- Python's slice with step 1 of a list of len elements: clamped into the list, never an
-- error. The first index and the end (exclusive).
local function bounds(len)
  local s, _, count = slice(ARGV[4], ARGV[5], '', len)
  return s, s + count
end

local function op_ltrim()
  local s, e = bounds(length())
  if e > s then
    redis.call('JSON.ARRTRIM', key, path, s, e - 1)
    return {e - s, tostring(s)}
  end
  redis.call('JSON.SET', key, path, '[]')
  return {0, tostring(s)}
end

local function op_lslice()
  local len = length()
  local s, e = bounds(len)
  local part = '[]'
  if e > s then
    part = redis.call('JSON.GET', key, path .. '[' .. s .. ':' .. e .. ']')
  end
  return {len, part}
end

local function op_llen()
  return {length()}
end

-- A circular buffer's push: ARGV[5] is its capacity, ARGV[6..] the JSON items (none: only the
-- trim). The items are appended, then the list is cut to its newest ARGV[5] elements, however
-- long it was before (a capacity lowered in the code takes effect at the next push).
local function op_bpush()
  local n, failed
  if #ARGV < 5 then
    local _
    _, failed = checked()
    if failed then
      return nil, failed
    end
    n = length()
  else
    n, failed = appended(5)
    if not n then
      return nil, failed
    end
  end
  local capacity = tonumber(ARGV[4])
  if n > capacity then
    redis.call('JSON.ARRTRIM', key, path, n - capacity, n - 1)
    n = capacity
  end
  return {n, redis.call('JSON.GET', key, path)}
end

-- A dict operation's reply: the dict's size afterwards first.
local function sized(result)
  result[1] = redis.call('JSON.OBJLEN', key, path)[1]
  return result
end

local function op_dset()
  -- Every value before is read before the first write.
  local result = {0}
  if ARGV[4] == '1' then
    for i = 8, #ARGV, 3 do
      table.insert(result, entry(ARGV[i + 2]))
    end
  end
  for i = 8, #ARGV, 3 do
    if ARGV[i] ~= '' then
      redis.call('JSON.SET', key, path .. ARGV[i], ARGV[i + 1])
    end
  end
  -- Keys without a step, all at once: a merge patch merges an object value into the one
  -- there, so those are deleted first; it deletes a member set to null, so nulls travel as
  -- a placeholder string turned back into null by one filter over the dict.
  if ARGV[5] ~= '' then
    redis.call('JSON.MERGE', key, path, ARGV[5])
  end
  if ARGV[6] ~= '' then
    redis.call('JSON.MERGE', key, path, ARGV[6])
  end
  if ARGV[7] ~= '' then
    redis.call('JSON.SET', key, path .. '..[?(@=="' .. ARGV[7] .. '")]', 'null')
  end
  return sized(result)
end

local function op_ddel()
  local result = {0, entry(ARGV[6])}
  if ARGV[4] ~= '' then
    redis.call('JSON.DEL', key, path .. ARGV[4])
  elseif result[2] ~= '[]' then
    redis.call('JSON.MERGE', key, path, ARGV[5])
  end
  return sized(result)
end

local function op_dget()
  return sized({0, entry(ARGV[6])})
end

local function op_dkeys()
  local result = {0}
  for _, k in ipairs(redis.call('JSON.OBJKEYS', key, path)[1]) do
    table.insert(result, k)
  end
  return sized(result)
end

local function op_dlen()
  return sized({0})
end

local function op_dclear()
  redis.call('JSON.SET', key, path, '{}')
  return sized({0})
end

-- The entry point: the checks `check`, the operation `run` on what they read, the expiry
-- re-armed, the reply.
local function FIELD(run, check)
  local read, failed = check()
  if failed then
    return failed
  end
  local result
  result, failed = run(read)
  if failed then
    return failed
  end
  local ttl = tonumber(ARGV[3])
  if ttl > 0 then
    -- KEYS[2..]: the model's companion keys (its sets' and queues'), which expire with it.
    for i = 1, #KEYS do
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  end
  if result then
    return result
  end
  return redis.call('JSON.GET', key, path)
end
