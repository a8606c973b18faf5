-- The runtime of every compiled ServerOps block (after the shared library, lua/lib/*.lua;
-- both are cut into pieces by src/ops/compile/pieces.rs, and a block's script carries the
-- pieces its operations need).
--
-- A block never writes until every operation has been checked: each root (a stored
-- document's field that some operation touches, or the whole document) is read once with
-- JSON.GET into an overlay, every operation reads and changes the overlay, and only when
-- the last one has succeeded is each changed root written back with one JSON.SET. A failure
-- anywhere returns a typed failure (lua/lib/failure.lua) with nothing written.
--
-- Values stay JSON text: a node is {r = text} until an operation needs to look inside an
-- array ({a = nodes}) or an object ({k = keys, q = quoted keys, m = key -> node}); text
-- that is never looked into is written back exactly as it was read.

local ROOTS, RES, OP = {}, {}, 0

-- The interpreter's optional parts, by name (PART.get_at, …): filled in after this runtime
-- with only those the script's blocks need (places below their root, slices, whole
-- documents set, conditions), so a block of plain fields carries none of them.
local PART = {}

-- A place's JSONPath, for a failure's message.
local function display(loc)
  if #loc.k == 0 and not loc.slice then
    return ROOTS[loc.root].path
  end
  return PART.display_at(loc)
end

-- display for a place below its root or a slice: a part, which read_at and want_item (the
-- only makers of such places) bring along.
local function display_at(loc)
  local rt = ROOTS[loc.root]
  local parts = { rt.path }
  for s, kind in ipairs(loc.k) do
    local v = loc.v[s]
    if kind == 'i' then
      parts[#parts + 1] = '[' .. v .. ']'
    elseif kind == 'f' and string.match(v, '^[%a_][%w_]*$') then
      parts[#parts + 1] = '.' .. v
    else
      parts[#parts + 1] = '[' .. cjson.encode(v) .. ']'
    end
  end
  if loc.slice then
    local s = loc.slice
    parts[#parts + 1] = '[' .. s[1] .. ':' .. s[2] .. ':' .. s[3] .. ']'
  end
  return table.concat(parts)
end

local function fail(kind, loc, a, b)
  error({ kind = kind, loc = loc, a = a, b = b }, 0)
end

local function typ(n)
  if n.a then
    return 'array'
  elseif n.k then
    return 'object'
  end
  return json_type(n.r, 1)
end

-- The element boundaries of a raw array's text ({starts, ends}), found once. Arrays of
-- plain scalars or of strings without escapes are split by one pattern match each; others
-- are scanned value by value.
local function spans(n)
  if n.sp then
    return n.sp
  end
  local s = n.r
  local st, en = {}, {}
  local len = #s
  if len > 2 then
    local fast = false
    -- Plain finds: a pattern class would be tried at every position.
    if not (string.find(s, '\\', 2, true) or string.find(s, '{', 2, true)
        or string.find(s, '[', 2, true)) then
      fast = true
      if not string.find(s, '"', 2, true) then
        -- Plain scalars: the elements lie between commas (a plain find per element measured
        -- twice as fast as a gmatch with position captures).
        local i, n = 2, 0
        while true do
          local q = string.find(s, ',', i, true)
          n = n + 1
          st[n] = i
          if not q then
            en[n] = len - 1
            break
          end
          en[n] = q - 1
          i = q + 1
        end
      else
        local expect = 2
        for p, q in string.gmatch(s, '()"[^"]*"()') do
          if p ~= expect then
            fast = false
            break
          end
          st[#st + 1], en[#en + 1] = p, q - 1
          expect = q + 1
        end
        if expect ~= len + 1 then
          fast = false
        end
      end
    end
    if not fast then
      st, en = {}, {}
      local i = 2
      while true do
        local e = skip(s, i)
        st[#st + 1], en[#en + 1] = i, e
        if string.byte(s, e + 1) == 93 then
          break
        end
        i = e + 2
      end
    end
  end
  n.sp = { st, en }
  return n.sp
end

-- The elements of an array node (parsed on first use).
local function arr(n)
  if n.a then
    return n.a
  end
  local s, items = n.r, {}
  local sp = spans(n)
  local st, en = sp[1], sp[2]
  for i = 1, #st do
    items[i] = { r = string.sub(s, st[i], en[i]) }
  end
  n.a, n.r, n.sp = items, nil, nil
  return items
end

local function enc(n)
  if n.r then
    return n.r
  elseif n.a then
    local parts = {}
    for i, e in ipairs(n.a) do
      parts[i] = enc(e)
    end
    return '[' .. table.concat(parts, ',') .. ']'
  end
  return PART.enc_obj(n)
end

-- enc of an object node, which only obj makes: obj brings it into a script.
-- A removed member is a gap in the key list (see op_dict_remove); a key removed and added
-- again appears twice there, and is written once.
local function enc_obj(n)
  local parts, seen = {}, n.dead and {}
  for i, key in ipairs(n.k) do
    local m = n.m[key]
    if m and not (seen and seen[key]) then
      if seen then
        seen[key] = true
      end
      parts[#parts + 1] = n.q[i] .. ':' .. enc(m)
    end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- An object node's members (parsed on first use).
local function obj(n)
  if n.k then
    return n
  end
  local s, keys, quoted, members = n.r, {}, {}, {}
  if #s > 2 then
    local i = 2
    while true do
      local e = skip(s, i)
      local q = string.sub(s, i, e)
      local key = cjson.decode(q)
      local ve = skip(s, e + 2)
      keys[#keys + 1], quoted[#quoted + 1] = key, q
      members[key] = { r = string.sub(s, e + 2, ve) }
      if string.byte(s, ve + 1) == 125 then
        break
      end
      i = ve + 2
    end
  end
  n.k, n.q, n.m, n.r = keys, quoted, members, nil
  return n
end
PART.enc_obj = enc_obj

local function copy(n)
  return { r = enc(n) }
end

local function str(n)
  return cjson.decode(n.r)
end

-- The program travels in ARGV after the expiries (see MAIN): NX reads the next value.
local AT = 0

local function NX()
  AT = AT + 1
  local v = ARGV[AT]
  if v == nil then
    error('the block program ends early', 0)
  end
  return v
end

-- The steps of a place right at its root (most places): shared, never written to.
local NO_STEPS = {}

-- A place, starting with the token t: the root's number alone for the root itself, or
-- the number and '+', then the number of steps, each step's kind and value (kinds f: a
-- field's JSON name, i: a list index in decimal, k: a dict key), then 's' and the slice's
-- start, stop and step ('' for an omitted bound) for a slice of the list there, or ''.
local function read_loc(t)
  local root = tonumber(t)
  if root then
    return { root = root, k = NO_STEPS, v = NO_STEPS }
  end
  return PART.read_at(t)
end

-- read_loc for a place below its root or a slice (a part, as get_at).
local function read_at(t)
  local loc = { root = tonumber(string.sub(t, 1, -2)), k = {}, v = {} }
  for s = 1, tonumber(NX()) do
    loc.k[s] = NX()
    loc.v[s] = NX()
  end
  if NX() == 's' then
    loc.slice = { NX(), NX(), NX() }
  end
  return loc
end
PART.display_at = display_at

-- Reads loc's root (one JSON.GET, the first time); a missing key is an error unless the
-- root is the whole document. (One JSON.GET per root measured faster than one per
-- document with several paths, whose reply must be parsed.)
local function load(loc)
  local rt = ROOTS[loc.root]
  if not rt.loaded then
    -- A failure here is about the root itself.
    local at = { root = loc.root, k = NO_STEPS, v = NO_STEPS }
    local ok, v = pcall(redis.call, 'JSON.GET', KEYS[rt.key], rt.path)
    if not ok then
      fail('wrongtype', at, redis.call('TYPE', KEYS[rt.key])['ok'])
    end
    rt.loaded = true
    if v then
      if v == '[]' then
        fail('type', at, '*', 'nothing')
      end
      rt.node = { r = string.sub(v, 2, -2) }
    elseif rt.path ~= '$' then
      fail('notfound', at)
    end
  end
  return rt
end

-- The Lua position of Python index i in a list of n elements, or nil when outside it.
local function at1(i, n)
  local at = index(i, n)
  return at and at + 1
end

-- The place made of the first m steps of loc.
local function prefix(loc, m)
  local out = { root = loc.root, k = {}, v = {} }
  for s = 1, m do
    out.k[s], out.v[s] = loc.k[s], loc.v[s]
  end
  return out
end

-- n, checked against the JSON type w; a failure names loc, or its first m steps.
local function want(loc, n, w, m)
  local t = typ(n)
  if w == '*' or t == w or (w == 'number' and t == 'integer') then
    return n
  end
  fail('type', m and PART.prefix(loc, m) or loc, w, t)
end

-- The child of container n at step s of loc, or nil when a dict has no such key.
local function child(loc, s, n)
  local kind, v = loc.k[s], loc.v[s]
  if kind == 'i' then
    local items = arr(want(loc, n, 'array', s - 1))
    local at = at1(v, #items)
    if not at then
      fail('index', prefix(loc, s - 1), v, #items)
    end
    return items[at]
  end
  return obj(want(loc, n, 'object', s - 1)).m[v]
end

-- The container holding the last step of loc, walking (and checking) every step before it.
local function parent(loc)
  local rt = load(loc)
  if not rt.node then
    fail('notfound', loc)
  end
  local n = rt.node
  for s = 1, #loc.k - 1 do
    n = child(loc, s, n)
    if not n then
      fail('type', prefix(loc, s), '*', 'nothing')
    end
  end
  return n
end

-- The value at a place (its slice, if any, ignored), checked against the JSON type w.
local function get(loc, w)
  if #loc.k > 0 then
    return PART.get_at(loc, w)
  end
  local rt = load(loc)
  if not rt.node then
    fail('notfound', loc)
  end
  return want(loc, rt.node, w)
end

-- get for a place below its root (a part: only in the scripts of blocks with such places).
local function get_at(loc, w)
  local n = child(loc, #loc.k, parent(loc))
  if not n then
    fail('type', prefix(loc, #loc.k), w, 'nothing')
  end
  return want(loc, n, w, #loc.k)
end

-- The list node a list place or a slice place names.
local function list_at(loc)
  return get(loc, 'array')
end

-- Whether loc is a whole stored document (which may be absent, and then is created).
local function is_doc(loc)
  return #loc.k == 0 and ROOTS[loc.root].path == '$'
end

-- Replaces the value at a place; a dict key (k) that is absent is added, a whole document
-- that is absent is created.
local function put(loc, node)
  local rt = ROOTS[loc.root]
  rt.dirty = true
  if #loc.k == 0 then
    rt.node = node
    return
  end
  PART.put_at(loc, node)
end

-- put for a place below its root (a part, as get_at).
local function put_at(loc, node)
  local p = parent(loc)
  local kind, v = loc.k[#loc.k], loc.v[#loc.k]
  if kind == 'i' then
    local items = arr(p)
    items[at1(v, #items)] = node
    return
  end
  obj(p)
  if not p.m[v] then
    p.k[#p.k + 1] = v
    p.q[#p.q + 1] = cjson.encode(v)
  end
  p.m[v] = node
end

-- Gives a whole document copied in as a model its own id (the key field's name, its JSON).
local function own_id(node, name, id)
  if name == '' then
    return node
  end
  local o = obj(node)
  if not o.m[name] then
    o.k[#o.k + 1] = name
    o.q[#o.q + 1] = cjson.encode(name)
  end
  o.m[name] = { r = id }
  return node
end

-- Python's slice of a list of n elements at the slice place loc: start, step, the number
-- of elements and the adjusted stop.
local function bounds(loc, n)
  local start, step, count, stop = slice(loc.slice[1], loc.slice[2], loc.slice[3], n)
  if not start then
    fail('slice', loc, 'slice step cannot be zero')
  end
  return start, step, count, stop
end

-- Whether the element text s[a..b] is of JSON type w.
local function text_is(s, a, b, w)
  if w == '*' then
    return true
  end
  local c = string.byte(s, a)
  if w == 'string' then
    return c == 34
  elseif w == 'boolean' then
    return c == 116 or c == 102
  elseif w == 'array' then
    return c == 91
  elseif w == 'object' then
    return c == 123
  elseif c ~= 45 and (c < 48 or c > 57) then
    return false
  elseif w == 'integer' then
    -- Only the element's own text: a search from a to the end of the list would cost the
    -- rest of the list per element (quadratic over a slice).
    return not string.find(string.sub(s, a, b), '[.eE]')
  end
  return true
end

-- Elements in flight are either a list of nodes or {chunk = their JSON texts joined by
-- commas, n = how many}, which moves a contiguous run of a raw list without splitting it.
local function vals_text(v)
  if v.chunk then
    return v.chunk
  end
  local parts = {}
  for i, e in ipairs(v) do
    parts[i] = enc(e)
  end
  return table.concat(parts, ',')
end

local function vals_nodes(v)
  if v.chunk then
    return arr({ r = '[' .. v.chunk .. ']' })
  end
  return v
end

local function vals_count(v)
  if v.chunk then
    if not v.n then
      v.n = #spans({ r = '[' .. v.chunk .. ']' })[1]
    end
    return v.n
  end
  return #v
end

-- The values of a JSON array text.
local function json_vals(text)
  return { chunk = string.sub(text, 2, -2) }
end

-- The bytes that show a run of JSON values is not all numbers, or not all integers.
local NUM_NOT = { '"', '[', '{', 't', 'f', 'n' }
local INT_NOT = { '"', '[', '{', 't', 'f', 'n', '.', 'e', 'E' }

-- Element e at index i of the list (or slice) place loc, checked against w; a failure names
-- the element ($.nums[2500]), not the slice.
local function want_item(loc, e, w, i)
  local t = typ(e)
  if w == '*' or t == w or (w == 'number' and t == 'integer') then
    return e
  end
  local at = prefix(loc, #loc.k)
  at.k[#at.k + 1], at.v[#at.v + 1] = 'i', tostring(i)
  fail('type', at, w, t)
end
PART.display_at = display_at

-- Copies of the elements a list or slice place names, checked against w.
local function items_of(loc, w)
  local list = list_at(loc)
  local sl = loc.slice
  if list.r and (not sl or (sl[1] == '' and sl[2] == '' and (sl[3] == '' or sl[3] == '1'))) then
    -- The whole list, verbatim: its elements already sit in a list of this element type.
    return { chunk = string.sub(list.r, 2, -2), n = list.sp and #list.sp[1] or nil }
  end
  if list.r then
    local sp = spans(list)
    local st, en = sp[1], sp[2]
    local start, step, count = 0, 1, #st
    if loc.slice then
      start, step, count = bounds(loc, #st)
    end
    if step == 1 then
      local s, ok = list.r, true
      if count == 0 then
        return { chunk = '', n = 0 }
      end
      local chunk = string.sub(s, st[start + 1], en[start + count])
      if w == 'integer' or w == 'number' then
        -- The run's text at once, with plain finds (memchr speed): without a string, a
        -- literal or a container, every element is a number; an integer holds no '.', 'e'
        -- or 'E'.
        for _, c in ipairs(w == 'integer' and INT_NOT or NUM_NOT) do
          if string.find(chunk, c, 1, true) then
            ok = false
            break
          end
        end
      elseif w ~= '*' then
        for i = start + 1, start + count do
          if not text_is(s, st[i], en[i], w) then
            ok = false
            break
          end
        end
      end
      if ok then
        return { chunk = chunk, n = count }
      end
    end
  end
  local items = arr(list)
  local out = {}
  if not loc.slice then
    for i, e in ipairs(items) do
      out[i] = copy(want_item(loc, e, w, i - 1))
    end
    return out
  end
  local start, step, count = bounds(loc, #items)
  for i = 0, count - 1 do
    local at = start + i * step
    out[i + 1] = copy(want_item(loc, items[at + 1], w, at))
  end
  return out
end

-- Python's `list[slice] = values`.
local function assign_slice(loc, values)
  local list = list_at(loc)
  if list.r then
    local sp = spans(list)
    local st, en = sp[1], sp[2]
    local n = #st
    local start, step, _, stop = bounds(loc, n)
    if step == 1 then
      if stop < start then
        stop = start
      end
      local s, parts = list.r, {}
      if start > 0 then
        parts[#parts + 1] = string.sub(s, 2, en[start])
      end
      local mid = vals_text(values)
      if mid ~= '' then
        parts[#parts + 1] = mid
      end
      if stop < n then
        parts[#parts + 1] = string.sub(s, st[stop + 1], #s - 1)
      end
      list.r, list.sp = '[' .. table.concat(parts, ',') .. ']', nil
      ROOTS[loc.root].dirty = true
      return
    end
  end
  values = vals_nodes(values)
  local items = arr(list)
  local start, step, count, stop = bounds(loc, #items)
  if step == 1 then
    if stop < start then
      stop = start
    end
    local out = {}
    for i = 1, start do
      out[#out + 1] = items[i]
    end
    for _, v in ipairs(values) do
      out[#out + 1] = v
    end
    for i = stop + 1, #items do
      out[#out + 1] = items[i]
    end
    list.a = out
  else
    if #values ~= count then
      fail('slice', loc, 'attempt to assign sequence of size ' .. #values ..
        ' to extended slice of size ' .. count)
    end
    for i = 0, count - 1 do
      items[start + i * step + 1] = values[i + 1]
    end
  end
  ROOTS[loc.root].dirty = true
end

-- Appends values to the list node; returns its new length. The first append to a list's
-- text joins texts; later ones go to its elements, so that k appends do not copy the list
-- k times.
local function append_vals(root, list, values)
  local rt = ROOTS[root]
  if list.r and not list.grown then
    list.grown = true
    local mid = vals_text(values)
    local had
    if rt.node == list and not rt.dirty then
      -- The list is its root, unchanged so far: the server knows its length (one command,
      -- where counting the elements of its text costs up to ~0.4 µs each).
      had = redis.call('JSON.ARRLEN', KEYS[rt.key], rt.path)[1]
    else
      had = #spans(list)[1]
    end
    rt.dirty = true
    if mid ~= '' then
      if had == 0 then
        list.r = '[' .. mid .. ']'
      else
        list.r = string.sub(list.r, 1, -2) .. ',' .. mid .. ']'
      end
      list.sp = nil
    end
    return had + vals_count(values)
  end
  rt.dirty = true
  local items = arr(list)
  for _, v in ipairs(vals_nodes(values)) do
    items[#items + 1] = v
  end
  return #items
end

-- The number at n plus the decimal or float text by, within [lo, hi] for integers (i64's
-- range when both are '', as the compiler sends it) and f32.
local function plus(loc, n, w, by, lo, hi)
  if w ~= 'integer' then
    return PART.fplus(loc, n, by, lo, hi)
  end
  if lo == '' then
    lo, hi = '-9223372036854775808', '9223372036854775807'
  end
  local r = sum(n.r, by)
  if cmp(r, lo) < 0 or cmp(r, hi) > 0 then
    fail('overflow', loc, lo, hi)
  end
  return r
end

-- plus for a float, which stays finite, and within [lo, hi] when given (an f32): a part,
-- only in the scripts of blocks that add to a float.
local function fplus(loc, n, by, lo, hi)
  local x = tonumber(n.r) + tonumber(by)
  local r = float(x)
  if not r or (lo ~= '' and (x < tonumber(lo) or x > tonumber(hi))) then
    fail('overflow', loc, lo, hi)
  end
  return r
end

-- Operations. Each returns its result as JSON text.

local function op_set(loc, w, value, id_name, id)
  if loc.slice then
    PART.assign_slice(loc, json_vals(value))
  elseif is_doc(loc) then
    PART.set_doc(loc, value, id_name, id)
  else
    if #loc.k == 0 or loc.k[#loc.k] ~= 'k' then
      get(loc, w)
    else
      want(loc, PART.parent(loc), 'object', #loc.k - 1)
    end
    put(loc, { r = value })
  end
  return 'null'
end

-- set of a whole document (a part: only in the scripts of blocks that set one), which keeps
-- its own id.
local function set_doc(loc, value, id_name, id)
  load(loc)
  put(loc, own_id({ r = value }, id_name, id))
end

local function op_incr(loc, w, by, lo, hi)
  local r = plus(loc, get(loc, w), w, by, lo, hi)
  put(loc, { r = r })
  return r
end

local function op_incr_by(loc, w, by, bw, lo, hi)
  local b = get(by, bw)
  local r = plus(loc, get(loc, w), w, b.r, lo, hi)
  put(loc, { r = r })
  return r
end

-- Copies from -> to; w is the JSON type of the whole value, ew of each element when a
-- slice is involved.
local function op_assign(from, to, w, ew, id_name, id)
  local value
  if from.slice or to.slice then
    local items = items_of(from, ew)
    if to.slice then
      assign_slice(to, items)
      return 'null'
    end
    value = { r = '[' .. vals_text(items) .. ']' }
  else
    value = copy(get(from, w))
  end
  if is_doc(to) then
    load(to)
    put(to, own_id(value, id_name, id))
  else
    get(to, w)
    put(to, value)
  end
  return 'null'
end

local function op_swap(x, y, w, x_name, x_id, y_name, y_id)
  local a, b = copy(get(x, w)), copy(get(y, w))
  put(x, own_id(b, x_name, x_id))
  put(y, own_id(a, y_name, y_id))
  return 'null'
end

-- The arguments of the operation being run (see run_block): read from here by an
-- operation with any number of places, which Lua's unpack cannot pass (~8,000 values).
local ARGS, NARGS = {}, 0

local function op_concat(to, sep)
  local parts = {}
  for i = 3, NARGS do
    parts[i - 2] = str(get(ARGS[i], 'string'))
  end
  get(to, 'string')
  local r = cjson.encode(table.concat(parts, sep))
  put(to, { r = r })
  return r
end

local function op_append_from(to, w, from)
  local values = items_of(from, w)
  return tostring(append_vals(to.root, list_at(to), values))
end

local function op_move(from, w, to)
  local n = #from.k
  local holder = prefix(from, n - 1)
  local source = arr(list_at(holder))
  local target = arr(list_at(to))
  local at = at1(from.v[n], #source)
  if not at then
    return 'null'
  end
  local item = want(from, source[at], w)
  table.remove(source, at)
  target[#target + 1] = item
  ROOTS[from.root].dirty = true
  ROOTS[to.root].dirty = true
  return enc(item)
end

-- The values to append are the operation's arguments after the place (ARGS[2 .. NARGS]),
-- one JSON text each.
local function op_list_push(loc)
  if ROOTS[loc.root].push then
    return PART.push_only(loc)
  end
  return PART.push_read(loc)
end

-- A push to a list the block also reads or changes otherwise: on the list read into the
-- overlay. A part, as get_at.
local function push_read(loc)
  local values = { chunk = table.concat(ARGS, ',', 2, NARGS), n = NARGS - 1 }
  return tostring(append_vals(loc.root, list_at(loc), values))
end

-- The length of a list root the block only appends to or measures (the compiler's choice,
-- see push_only): one JSON.ARRLEN, the first time, checks it and gives its length; the
-- values pushed since are counted in.
local function measured(loc)
  local rt = ROOTS[loc.root]
  if not rt.len then
    local key = KEYS[rt.key]
    local ok, r = pcall(redis.call, 'JSON.ARRLEN', key, rt.path)
    if not ok then
      -- A missing key errs here as a key of another Redis type does.
      local t = redis.call('TYPE', key)['ok']
      if t == 'none' then
        fail('notfound', loc)
      end
      fail('wrongtype', loc, t)
    end
    if not r[1] then
      -- No match ({}), or a value that is not an array ({false}).
      local found = #r > 0 and redis.call('JSON.TYPE', key, rt.path)[1] or 'nothing'
      fail('type', loc, 'array', found)
    end
    rt.len = r[1]
  end
  return rt.len
end

-- A push to a list the block only appends to (nothing else reads or writes it but length
-- conditions, the compiler's choice): the list is never read, measured checks it and gives
-- its length, and its values wait for the commit (see pushed). A part, as get_at.
local function push_only(loc)
  local rt = ROOTS[loc.root]
  measured(loc)
  rt.vals = rt.vals or {}
  for i = 2, NARGS do
    rt.vals[#rt.vals + 1] = ARGS[i]
  end
  rt.len = rt.len + NARGS - 1
  return tostring(rt.len)
end

-- A condition's operand: the length of the list at the place read next (a list or a
-- circular buffer), after what the block did before: measured for a list the block only appends to or
-- measures, else the overlay's (its elements are not parsed). A part, only in the scripts
-- of blocks with such a condition.
local function list_len()
  local loc = read_loc(NX())
  if ROOTS[loc.root].push then
    return tostring(measured(loc))
  end
  local n = list_at(loc)
  return tostring(n.a and #n.a or #spans(n)[1])
end

local function op_list_insert(loc, i, value)
  local list = list_at(loc)
  local items = arr(list)
  local at = insert_at(i, #items)
  table.insert(items, at + 1, { r = value })
  ROOTS[loc.root].dirty = true
  return tostring(#items)
end

local function op_list_pop(loc)
  local n = #loc.k
  local holder = prefix(loc, n - 1)
  local items = arr(list_at(holder))
  local at = at1(loc.v[n], #items)
  if not at then
    fail('index', loc, loc.v[n], #items)
  end
  local item = table.remove(items, at)
  ROOTS[loc.root].dirty = true
  return enc(item)
end

local function op_clear(loc, w)
  get(loc, w)
  if w == 'array' then
    put(loc, { r = '[]' })
  else
    put(loc, { r = '{}' })
  end
  return 'null'
end

local function op_dict_remove(loc)
  local p = want(loc, parent(loc), 'object', #loc.k - 1)
  local key = loc.v[#loc.k]
  obj(p)
  local old = p.m[key]
  if not old then
    return 'null'
  end
  -- Left in the key list as a gap that enc skips: finding its place would cost the dict's
  -- size per removal.
  p.m[key] = nil
  p.dead = (p.dead or 0) + 1
  ROOTS[loc.root].dirty = true
  return enc(old)
end

local function op_dict_update(loc, entries)
  local p = obj(get(loc, 'object'))
  local patch = obj({ r = entries })
  for i, key in ipairs(patch.k) do
    if not p.m[key] then
      p.k[#p.k + 1] = key
      p.q[#p.q + 1] = patch.q[i]
    end
    p.m[key] = patch.m[key]
  end
  ROOTS[loc.root].dirty = true
  return tostring(#p.k - (p.dead or 0))
end

local function op_str_append(loc, suffix)
  local r = cjson.encode(str(get(loc, 'string')) .. suffix)
  put(loc, { r = r })
  return r
end

local function op_toggle(loc)
  local n = get(loc, 'boolean')
  local r = n.r == 'true' and 'false' or 'true'
  put(loc, { r = r })
  return r
end

-- A circular buffer's push: appends the JSON array text `values` to the list at loc, then
-- keeps its newest `capacity` elements, however long it was before; returns its length.
local function op_buffer_push(loc, capacity, values)
  local list = list_at(loc)
  local len = append_vals(loc.root, list, json_vals(values))
  local keep = tonumber(capacity)
  if len <= keep then
    return tostring(len)
  end
  local items, newest = arr(list), {}
  for i = len - keep + 1, len do
    newest[#newest + 1] = items[i]
  end
  list.a = newest
  return tostring(keep)
end

-- Conditions: a comparison of two operands, each a place (checked against w) or a JSON
-- value V(text).
local function V(text)
  return { value = text }
end

local function operand(x, w)
  if x.value then
    return { r = x.value }
  end
  return get(x, w)
end

local function bytes_cmp(a, b)
  if a == b then
    return 0
  end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y and -1 or 1
    end
  end
  return #a < #b and -1 or 1
end

local function compare(op, w, x, y)
  local a, b = operand(x, w), operand(y, w)
  local c
  if w == 'integer' then
    c = cmp(a.r, b.r)
  elseif w == 'number' then
    local p, q = tonumber(a.r), tonumber(b.r)
    c = p == q and 0 or (p < q and -1 or 1)
  elseif w == 'string' then
    c = PART.bytes_cmp(str(a), str(b))
  else
    c = a.r == b.r and 0 or 1
  end
  if op == 'eq' then
    return c == 0
  elseif op == 'ne' then
    return c ~= 0
  elseif op == 'gt' then
    return c > 0
  elseif op == 'ge' then
    return c >= 0
  elseif op == 'lt' then
    return c < 0
  end
  return c <= 0
end

-- Declares root i: a part of the document at KEYS[key], at the JSONPath path.
local function ROOT(i, key, path)
  ROOTS[i] = { key = key, path = path }
end

-- Runs the block: n operations, then writes each changed root, re-arms expiries
-- (ARGV[1 .. 2 * #KEYS]: per key the write and the read expiry in ms, '0' for none), and
-- returns {'ok', each result ('' when skipped by a condition), then with echo each changed
-- root of the first key: its number and its JSON}. A failure returns a typed failure
-- naming the operation (lua/lib/failure.lua; a Lua error is code 'script') and writes
-- nothing.
local function RUN(n, echo, body)
  local ok, e = pcall(body)
  if not ok then
    if type(e) ~= 'table' then
      return failure('script', OP, 0, '', tostring(e), '')
    end
    -- A key of another Redis type is about the whole key ($), as the field script says.
    local path = e.kind == 'wrongtype' and '$' or display(e.loc)
    return failure(e.kind, OP, ROOTS[e.loc.root].key, path, e.a, e.b)
  end
  local out, wrote = { 'ok' }, {}
  for i = 1, n do
    out[i + 1] = RES[i] or ''
  end
  -- One JSON.MSET per 500 roots (Lua's unpack has a limit of a few thousand values).
  local writes = {}
  for i, rt in ipairs(ROOTS) do
    if rt.dirty then
      local text = enc(rt.node)
      if #writes >= 1500 then
        redis.call('JSON.MSET', unpack(writes))
        writes = {}
      end
      writes[#writes + 1] = KEYS[rt.key]
      writes[#writes + 1] = rt.path
      writes[#writes + 1] = text
      wrote[rt.key] = true
      if echo and rt.key == 1 then
        out[#out + 1] = tostring(i)
        out[#out + 1] = text
      end
    end
  end
  if #writes > 0 then
    redis.call('JSON.MSET', unpack(writes))
  end
  if PART.pushed then
    PART.pushed(out, wrote, echo)
  end
  rearm(wrote)
  return out
end

-- The operations a program may call, by number: filled in after this runtime with only the
-- operations the script's blocks use, in the order of their names (the compiler numbers
-- them alike).
local OPS = {}

-- A condition: 'and' or 'or' and two conditions, 'not' and one, or 'cmp', the comparison,
-- the JSON type and two operands, each a place, 'v' and a JSON value, or the name of the
-- part that measures it, which reads what follows: a set's or a queue's size or membership
-- (SQUERY, lua/block_structures.lua), a list's length (list_len).
local function read_operand()
  local t = NX()
  if t == 'v' then
    return V(NX())
  elseif PART[t] then
    return V(PART[t]())
  end
  return read_loc(t)
end

local function read_cond()
  local t = NX()
  if t == 'and' or t == 'or' then
    return { t, read_cond(), read_cond() }
  elseif t == 'not' then
    return { t, read_cond() }
  end
  local op, w = NX(), NX()
  return { 'cmp', op, w, read_operand(), read_operand() }
end

local function test(c)
  local t = c[1]
  if t == 'and' then
    return test(c[2]) and test(c[3])
  elseif t == 'or' then
    return test(c[2]) or test(c[3])
  elseif t == 'not' then
    return not test(c[2])
  end
  return compare(c[2], c[3], c[4], c[5])
end

-- Runs a list of statements as it reads them: their number, then each one: an operation's
-- number in OPS, its result's number, its arguments' kinds ('l' for a place, 'v' for a value, one letter
-- each) and the arguments; or 'w', the condition's number, the condition, then each branch
-- as how many ARGV values it takes and the list (the branch not taken is skipped). Reading
-- as it runs keeps the per-call cost low (a Lua function call or table costs ~0.1 µs here);
-- nothing is written before RUN has run every statement, so a failure anywhere still
-- writes nothing.
local function run_block()
  AT = AT + 1
  for _ = 1, tonumber(ARGV[AT]) do
    local name, out = ARGV[AT + 1], tonumber(ARGV[AT + 2])
    AT = AT + 2
    OP = out
    if name == 'w' then
      PART.WHEN(out)
    else
      local f = OPS[tonumber(name)]
      if not f then
        error('unknown block operation ' .. tostring(name), 0)
      end
      local kinds = ARGV[AT + 1]
      AT = AT + 1
      local n = #kinds
      for a = 1, n do
        AT = AT + 1
        if string.byte(kinds, a) == 108 then
          ARGS[a] = read_loc(ARGV[AT])
        else
          ARGS[a] = ARGV[AT]
        end
      end
      NARGS = n
      RES[out] = f(unpack(ARGS, 1, math.min(n, 16)))
    end
  end
end

-- A condition, read and tested, and the branch it picks run (the other skipped): a part,
-- only in the scripts of blocks that have one, so no other script carries the comparisons.
local function WHEN(out)
  local yes = test(read_cond())
  RES[out] = tostring(yes)
  if yes then
    AT = AT + 1
    run_block()
    AT = AT + 1 + tonumber(ARGV[AT + 1])
  else
    AT = AT + 2 + tonumber(ARGV[AT + 1])
    run_block()
  end
end

-- The commit of the lists only appended to (see push_only), after every check: each one's
-- values in JSON.ARRAPPENDs of 4,000 (Lua's unpack refuses 8,000 values at once), which
-- cannot fail (the list was checked, the client checked every value); with echo, each one
-- of the first key read back. A part, in the scripts of blocks with such lists.
local function pushed(out, wrote, echo)
  for i, rt in ipairs(ROOTS) do
    if rt.vals then
      local key, v = KEYS[rt.key], rt.vals
      for at = 1, #v, 4000 do
        redis.call('JSON.ARRAPPEND', key, rt.path, unpack(v, at, math.min(at + 3999, #v)))
      end
      wrote[rt.key] = true
      if echo and rt.key == 1 then
        out[#out + 1] = tostring(i)
        out[#out + 1] = string.sub(redis.call('JSON.GET', key, rt.path), 2, -2)
      end
    end
  end
end

-- Runs the block ARGV describes: after the expiries (2 per key), '1' to echo the changed
-- roots of the first key or '0', the number of operations, the number of roots and each
-- root's key number and JSONPath, then the statements (see run_block).
local function MAIN()
  AT = 2 * #KEYS
  local echo, n = NX() == '1', tonumber(NX())
  for i = 1, tonumber(NX()) do
    -- A key's number followed by 'a' marks a list root the block only appends to.
    local k = NX()
    ROOT(i, tonumber(k) or tonumber(string.sub(k, 1, -2)), NX())
    ROOTS[i].push = not tonumber(k)
  end
  return RUN(n, echo, run_block)
end
