-- The fast path of a flat block (lua/flat.lua): the same block, read from the same KEYS and
-- ARGV, done in the usual case (every document present, every place of the JSON type its
-- operation wants, every integer increment's operand, value and result below 10^15 in
-- magnitude) with one function and no failure reporting. In every other case it writes
-- nothing and answers {'declined'}; the client then runs the block's whole flat script,
-- which checks again and names the failure, or, when a document changed in between, does
-- the block. A float increment has no fast path: a block with one runs the whole script.
-- Why: each function a script defines is created again on every call. The whole flat
-- runtime defines about thirty (the exact decimal arithmetic, the typed failures, a check,
-- a write and a first try per kind); this one defines one, QUICK, with every kind inline.
-- It is the same text for every flat block (one script, whichever kinds a block uses: the
-- kinds it does not use cost only their text).

-- The block, as FLAT of lua/flat.lua runs it (the same reply), or {'declined'} with nothing
-- written. Each operation is checked with one command, as FLAT checks it; the last one, when
-- its command writes nothing where it would fail (a toggle, a list push, a dict entry),
-- instead tries that command after every other check, as the first write. The values set
-- are then written with one JSON.MSET (FLAT writes each with its own JSON.SET).
local function QUICK()
  local at = 2 * #KEYS + 1
  local echo, n = ARGV[at] == '1', tonumber(ARGV[at + 1])
  at = at + 2
  -- Per operation: its kind, its key's number, its JSONPath, where its operands start in
  -- ARGV and how many there are; its result as JSON text; its echo when read first.
  local kind, doc, path, arg, count, res, pre = {}, {}, {}, {}, {}, {}, {}
  -- The last operation when it is tried first (below), and the dicts already checked (by
  -- key number and JSONPath).
  local lead, dicts = nil, {}
  for i = 1, n do
    local kd, k, p, c = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2], tonumber(ARGV[at + 3])
    local o = at + 4
    kind[i], doc[i], path[i], arg[i], count[i] = kd, k, p, o, c
    at = o + c
    -- When echoing, a list push or a dict entry on the first key reads its list or dict as
    -- its check (never tried first): the echo is made from what was read.
    local mine = echo and k == 1
    if i == n and (kd == 't' or (kd == 'd' and not mine) or (kd == 'p' and c > 0 and not mine)) then
      lead = i
    elseif kd == 'i' then
      -- An integer: its value read, the result computed as a double (exact below 2^53) and
      -- range-checked; a bound of 17 digits or more is beyond any such result, one of 16 is
      -- left to the whole script.
      local v = redis.pcall('JSON.GET', KEYS[k], p)
      local digits, by = type(v) == 'string' and string.match(v, '^%[%-?(%d+)%]$'), ARGV[o]
      if not digits or #digits > 15 or #by - (string.byte(by) == 45 and 1 or 0) > 15 then
        return { 'declined' }
      end
      local r, lo, hi = tonumber(string.sub(v, 2, -2)) + tonumber(by), ARGV[o + 1], ARGV[o + 2]
      if lo ~= '' then
        local dl = #lo - (string.byte(lo) == 45 and 1 or 0)
        local dh = #hi - (string.byte(hi) == 45 and 1 or 0)
        if (dl < 17 and (dl > 15 or r < tonumber(lo))) or (dh < 17 and (dh > 15 or r > tonumber(hi))) then
          return { 'declined' }
        end
      end
      res[i] = string.format('%.0f', r)
    elseif kd == 'a' then
      -- A string append: the string read (JSON text ["..."]); the new string's JSON text is
      -- the old one without its closing quote and the suffix without its opening one.
      local v = redis.pcall('JSON.GET', KEYS[k], p)
      if type(v) ~= 'string' or string.byte(v, 2) ~= 34 then
        return { 'declined' }
      end
      res[i] = string.sub(v, 2, -3) .. string.sub(ARGV[o], 2)
    elseif kd == 'p' and mine and c > 0 then
      -- A list push echoed: the list read (JSON text [ [...] ], the list inside a match
      -- array); its echo is the list with the elements after it, its result the length
      -- JSON.ARRAPPEND answers below.
      local v = redis.pcall('JSON.GET', KEYS[k], p)
      if type(v) ~= 'string' or string.byte(v, 2) ~= 91 then
        return { 'declined' }
      end
      v = string.sub(v, 2, -2)
      local add = table.concat(ARGV, ',', o, o + c - 1)
      pre[i] = v == '[]' and '[' .. add .. ']' or string.sub(v, 1, -2) .. ',' .. add .. ']'
    elseif kd == 'p' then
      -- A list push: JSON.ARRLEN checks the list and gives its length; the list is not read.
      local r = redis.pcall('JSON.ARRLEN', KEYS[k], p)
      if type(r) ~= 'table' or not r[1] then
        return { 'declined' }
      end
      res[i] = tostring(r[1] + c)
    elseif kd ~= 's' and kd ~= 't' and kd ~= 'd' then
      -- A kind this path does not do (the client sends none).
      return { 'declined' }
    else
      -- A set (the JSON types allowed first), a toggle, a dict entry (its dict must be an
      -- object, checked once for all the block's entries in it): the JSON type there. An
      -- echoed dict is read instead (JSON text [{...}]), its echo on its first entry; the
      -- client puts each entry into it.
      local w = kd == 's' and ARGV[o] or kd == 't' and 'boolean' or 'object'
      local dict = kd == 'd' and k .. ARGV[o]
      if dict and mine and not dicts[dict] then
        local v = redis.pcall('JSON.GET', KEYS[k], ARGV[o])
        if type(v) ~= 'string' or string.byte(v, 2) ~= 123 then
          return { 'declined' }
        end
        pre[i], dicts[dict] = string.sub(v, 2, -2), true
      elseif not (dict and dicts[dict]) then
        local t = redis.pcall('JSON.TYPE', KEYS[k], dict and ARGV[o] or p)
        t = type(t) == 'table' and t[1]
        if not t or not (w == '*' or t == w or (w == 'number' and t == 'integer')) then
          return { 'declined' }
        end
        if dict then
          dicts[dict] = true
        end
      end
      res[i] = 'null'
    end
  end
  if lead then
    -- JSON.TOGGLE and JSON.ARRAPPEND err for a missing key or one of another type and do
    -- nothing where no boolean or list is (answering nil); JSON.SET errs or answers nil.
    local kd, k, p, o, c = kind[lead], KEYS[doc[lead]], path[lead], arg[lead], count[lead]
    local r
    if kd == 't' then
      r = redis.pcall('JSON.TOGGLE', k, p)
      r = type(r) == 'table' and r[1]
      res[lead] = r == 1 and 'true' or 'false'
    elseif kd == 'p' then
      -- Its first run of 4,000 elements; the writes below send the rest.
      r = redis.pcall('JSON.ARRAPPEND', k, p, unpack(ARGV, o, math.min(o + 3999, o + c - 1)))
      r = type(r) == 'table' and r[1]
      res[lead] = r and tostring(r + math.max(c - 4000, 0))
    else
      r = redis.pcall('JSON.SET', k, p, ARGV[o + 1])
      r = type(r) == 'table' and r.ok
      res[lead] = 'null'
    end
    if not r then
      return { 'declined' }
    end
  end
  -- The values set (an integer's result, a set's value, a dict entry's) go in one
  -- JSON.MSET, after the other writes (no place is inside another's, so the order does not
  -- matter), as key, path, value triples.
  local out, sets = { 'ok' }, {}
  for i = 1, n do
    local kd, k, p, o = kind[i], KEYS[doc[i]], path[i], arg[i]
    if i == lead and kd ~= 'p' then
      -- Done.
    elseif kd == 'i' or kd == 's' or kd == 'd' then
      local m = #sets
      sets[m + 1], sets[m + 2], sets[m + 3] = k, p, kd == 'i' and res[i] or ARGV[o + 1]
    elseif kd == 't' then
      res[i] = redis.call('JSON.TOGGLE', k, p)[1] == 1 and 'true' or 'false'
    elseif kd == 'a' then
      redis.call('JSON.STRAPPEND', k, p, ARGV[o])
    else
      -- A list push, in runs of 4,000 elements (Lua's unpack refuses 8,000 values at once;
      -- a push tried first sent its first run above); none can fail (the list was checked,
      -- and the client checked every element).
      local last, r = o + count[i] - 1, nil
      for from = i == lead and o + 4000 or o, last, 4000 do
        r = redis.call('JSON.ARRAPPEND', k, p, unpack(ARGV, from, math.min(from + 3999, last)))
      end
      res[i] = res[i] or tostring(r[1])
    end
    out[i + 1] = res[i]
  end
  -- In runs of 1,332 triples (3,996 values: Lua's unpack refuses 8,000 at once); none can
  -- fail, every place was checked.
  for from = 1, #sets, 3996 do
    redis.call('JSON.MSET', unpack(sets, from, math.min(from + 3995, #sets)))
  end
  if echo then
    -- Each operation's value afterwards on the first document: its result, the value set,
    -- a list's whole value (made above, or read back after a push of nothing), a dict's
    -- whole value before its entries (made above, on its first entry, else '').
    for i = 1, n do
      local kd, e = kind[i], ''
      if doc[i] == 1 then
        if kd == 's' then
          e = ARGV[arg[i] + 1]
        elseif kd == 'd' then
          e = pre[i] or ''
        elseif kd == 'p' then
          e = pre[i] or string.sub(redis.call('JSON.GET', KEYS[1], path[i]), 2, -2)
        else
          e = res[i]
        end
      end
      out[n + 1 + i] = e
    end
  end
  -- Every document was written: its write expiry.
  for k = 1, #KEYS do
    if ARGV[2 * k - 1] ~= '0' then
      redis.call('PEXPIRE', KEYS[k], ARGV[2 * k - 1])
    end
  end
  return out
end
