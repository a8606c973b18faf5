-- The runtime of a flat block (after the shared library, lua/lib/*.lua; cut into pieces as
-- the block runtime is, src/script/lua/pieces.rs): the plan the compiler picks for a block
-- whose every operation acts on a field of its own (or a dict entry of its own) of a stored
-- document, no place inside another's, and that has no condition. Such a block needs no
-- overlay: each operation is checked with one command (the value, its JSON type or the
-- list's length), and only when every check has passed is each one written with one bare
-- RedisJSON command at its own path. So only changed paths are written (never a whole
-- field or document), a list is appended to without being read, and a script carries the
-- checks and writes of the kinds of operations its blocks use, nothing else.
--
-- ARGV: per key its write and its read expiry in ms ('0' for none); '1' to echo the changed
-- values of the first key, or '0'; the number of operations; then each operation: its kind,
-- its key's number, its JSONPath, the number of its operands and the operands:
--   i  (an integer incr) the decimal text to add, the lowest and the highest value allowed
--      ('' and '' for i64's range);
--   f  (a float incr) the number to add, the lowest and the highest value allowed ('' and
--      '' for any finite value);
--   s  (set) the JSON types allowed ('*' for any, 'number' takes integers too), the JSON value;
--   t  (toggle) none;
--   a  (a string append) the suffix as a JSON string;
--   p  (a list push) the JSON elements, one operand each;
--   d  (a dict entry set, its path the entry's) the dict's JSONPath, the JSON value.
-- Returns {'ok', each operation's result as JSON text, then, when echoing, each operation's
-- echo: its value afterwards for an operation on the first key (a list's whole value, read
-- back; a dict's on its first entry, else ''), else ''}. A failure is a typed failure
-- naming the operation (lua/lib/failure.lua), with nothing written.

-- The checks and the writes, by kind, and for the kinds whose command writes nothing where
-- it would fail (toggle, list push, dict entry), that command tried before its checks (see
-- FLAT): filled in after this runtime with only the kinds the script's blocks use.
local CHECK, WRITE, FIRST = {}, {}, {}

-- The value at op's place as JSON.GET answers it (in a one-element array), or nil and the
-- failure: the key missing or of another Redis type.
local function read(op)
  local key = KEYS[op.k]
  local ok, v = pcall(redis.call, 'JSON.GET', key, op.path)
  if not ok then
    return nil, failure('wrongtype', op.i, op.k, '$', redis.call('TYPE', key)['ok'])
  end
  if not v then
    return nil, failure('notfound', op.i, op.k, '$')
  end
  return v
end

-- The JSON type at path (JSON.TYPE, 'nothing' when absent), or nil and the failure.
local function type_at(op, path)
  local key = KEYS[op.k]
  local ok, t = pcall(redis.call, 'JSON.TYPE', key, path)
  if not ok then
    return nil, failure('wrongtype', op.i, op.k, '$', redis.call('TYPE', key)['ok'])
  end
  if not t then
    return nil, failure('notfound', op.i, op.k, '$')
  end
  return t[1] or 'nothing'
end

-- The failure when the JSON type found is not w ('number' takes an integer, '*' any value
-- but none), or nil.
local function unlike(op, path, w, found)
  if found ~= 'nothing' and (w == '*' or found == w or (w == 'number' and found == 'integer')) then
    return nil
  end
  return failure('type', op.i, op.k, path, w, found)
end

-- The value at op's place (as read answers it) when of JSON type w, or nil and the failure.
local function read_as(op, w)
  local v, failed = read(op)
  if not v then
    return nil, failed
  end
  failed = unlike(op, op.path, w, json_type(v, 2))
  if failed then
    return nil, failed
  end
  return v
end

local function check_i(op)
  local v, failed = read_as(op, 'integer')
  if not v then
    return failed
  end
  local lo, hi = ARGV[op.a + 1], ARGV[op.a + 2]
  if lo == '' then
    lo, hi = '-9223372036854775808', '9223372036854775807'
  end
  local r = sum(string.sub(v, 2, -2), ARGV[op.a])
  if cmp(r, lo) < 0 or cmp(r, hi) > 0 then
    return failure('overflow', op.i, op.k, op.path, lo, hi)
  end
  op.res = r
end

local function check_f(op)
  local v, failed = read_as(op, 'number')
  if not v then
    return failed
  end
  local lo, hi = ARGV[op.a + 1], ARGV[op.a + 2]
  local x = tonumber(string.sub(v, 2, -2)) + tonumber(ARGV[op.a])
  local r = float(x)
  if not r or (lo ~= '' and (x < tonumber(lo) or x > tonumber(hi))) then
    return failure('overflow', op.i, op.k, op.path, lo, hi)
  end
  op.res = r
end

-- An integer or a float: the value checked and computed, written as it is.
local function write_i(op)
  redis.call('JSON.SET', KEYS[op.k], op.path, op.res)
  op.echo = op.res
end
local write_f = write_i

local function check_s(op)
  local t, failed = type_at(op, op.path)
  if not t then
    return failed
  end
  failed = unlike(op, op.path, ARGV[op.a], t)
  if failed then
    return failed
  end
  op.res = 'null'
end

local function write_s(op)
  redis.call('JSON.SET', KEYS[op.k], op.path, ARGV[op.a + 1])
  op.echo = ARGV[op.a + 1]
end

local function check_t(op)
  local t, failed = type_at(op, op.path)
  if not t then
    return failed
  end
  return unlike(op, op.path, 'boolean', t)
end

local function write_t(op)
  op.res = redis.call('JSON.TOGGLE', KEYS[op.k], op.path)[1] == 1 and 'true' or 'false'
  op.echo = op.res
end

-- JSON.TOGGLE errs for a missing key or one of another type and toggles nothing where no
-- boolean is.
local function first_t(op)
  local ok, r = pcall(redis.call, 'JSON.TOGGLE', KEYS[op.k], op.path)
  if not ok or not r[1] then
    return nothing_done(check_t(op), r, op.path)
  end
  op.res = r[1] == 1 and 'true' or 'false'
  op.echo = op.res
end

local function check_a(op)
  local v, failed = read_as(op, 'string')
  if not v then
    return failed
  end
  -- The new string's JSON text: the old one without its closing quote, the suffix without
  -- its opening one.
  op.res = string.sub(v, 2, -3) .. string.sub(ARGV[op.a], 2)
end

local function write_a(op)
  redis.call('JSON.STRAPPEND', KEYS[op.k], op.path, ARGV[op.a])
  op.echo = op.res
end

-- A list push: one JSON.ARRLEN checks the list and gives its length; the list is not read.
local function check_p(op)
  local key = KEYS[op.k]
  local ok, r = pcall(redis.call, 'JSON.ARRLEN', key, op.path)
  if not ok then
    -- A missing key errs here as a key of another Redis type does.
    local t = redis.call('TYPE', key)['ok']
    if t == 'none' then
      return failure('notfound', op.i, op.k, '$')
    end
    return failure('wrongtype', op.i, op.k, '$', t)
  end
  if not r[1] then
    -- No match ({}), or a value that is not an array ({false}).
    local found = #r > 0 and redis.call('JSON.TYPE', key, op.path)[1] or 'nothing'
    return failure('type', op.i, op.k, op.path, 'array', found)
  end
  op.res = tostring(r[1] + op.n)
end

-- In runs of 4,000 elements (Lua's unpack refuses 8,000 values at once); none can fail: the
-- list was checked and the client checked every element.
local function write_p(op)
  for at = op.a, op.a + op.n - 1, 4000 do
    redis.call('JSON.ARRAPPEND', KEYS[op.k], op.path,
      unpack(ARGV, at, math.min(at + 3999, op.a + op.n - 1)))
  end
end

-- JSON.ARRAPPEND errs for a missing key or one of another type and appends nothing where no
-- list is; the runs after the first cannot fail. (Not for a push of no elements, which has
-- no command to try.)
local function first_p(op)
  local last = op.a + op.n - 1
  local ok, r = pcall(redis.call, 'JSON.ARRAPPEND', KEYS[op.k], op.path,
    unpack(ARGV, op.a, math.min(op.a + 3999, last)))
  if not ok or not r[1] then
    return nothing_done(check_p(op), r, op.path)
  end
  local n = r[1]
  for at = op.a + 4000, last, 4000 do
    n = redis.call('JSON.ARRAPPEND', KEYS[op.k], op.path, unpack(ARGV, at, math.min(at + 3999, last)))[1]
  end
  op.res = tostring(n)
end

-- A dict entry: the dict must be an object; the entry is added or replaced.
local function check_d(op)
  local dict = ARGV[op.a]
  local t, failed = type_at(op, dict)
  if not t then
    return failed
  end
  failed = unlike(op, dict, 'object', t)
  if failed then
    return failed
  end
  op.res = 'null'
end

local function write_d(op)
  redis.call('JSON.SET', KEYS[op.k], op.path, ARGV[op.a + 1])
end

-- JSON.SET errs for a missing key or one of another type and sets nothing (answers nil)
-- where the dict is not an object.
local function first_d(op)
  local ok, r = pcall(redis.call, 'JSON.SET', KEYS[op.k], op.path, ARGV[op.a + 1])
  if not ok or not r then
    return nothing_done(check_d(op), r, op.path)
  end
  op.res = 'null'
end

-- Runs the block ARGV describes: every check, then every write, the expiries re-armed
-- (each key's write expiry, as every operation writes), the reply. The last operation, when
-- its command writes nothing where it would fail, skips its check: its command is the first
-- write, after every other operation's check (so a failure still names the first operation
-- that fails), and its checks run only when it wrote nothing, which is then the failure.
local function FLAT()
  local at = 2 * #KEYS + 1
  local echo, n = ARGV[at] == '1', tonumber(ARGV[at + 1])
  at = at + 2
  local ops, lead = {}, nil
  for i = 1, n do
    local op = { i = i, kind = ARGV[at], k = tonumber(ARGV[at + 1]), path = ARGV[at + 2],
      n = tonumber(ARGV[at + 3]), a = at + 4 }
    at = op.a + op.n
    ops[i] = op
    if i == n and FIRST[op.kind] and (op.kind ~= 'p' or op.n > 0) then
      lead = op
    else
      local failed = CHECK[op.kind](op)
      if failed then
        return failed
      end
    end
  end
  if lead then
    local failed = FIRST[lead.kind](lead)
    if failed then
      return failed
    end
  end
  local out, wrote = { 'ok' }, {}
  for i, op in ipairs(ops) do
    if op ~= lead then
      WRITE[op.kind](op)
    end
    out[i + 1] = op.res
    wrote[op.k] = true
  end
  if echo then
    -- The dicts already sent (by JSONPath).
    local sent = {}
    for i, op in ipairs(ops) do
      local e = ''
      if op.k == 1 then
        e = op.echo
        if not e then
          -- A list or a dict: its whole value afterwards, a dict's on its first entry only
          -- (each read sends the whole dict; the client puts each entry into it).
          local path = op.kind == 'd' and ARGV[op.a] or op.path
          e = sent[path] and '' or string.sub(redis.call('JSON.GET', KEYS[1], path), 2, -2)
          sent[path] = true
        end
      end
      out[n + 1 + i] = e
    end
  end
  rearm(wrote)
  return out
end
