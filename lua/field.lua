-- One operation on one field of a stored model: every check before the first write, the
-- expiry re-armed in the same step, and the field's new value returned.
-- KEYS[1]: the document's key.
-- ARGV[1]: the operation: get, set, incr, mul (exact integers), fincr, fmul (floats),
--          append (strings), toggle (booleans).
-- ARGV[2]: the field's JSONPath (one match, e.g. $.address.city).
-- ARGV[3]: the JSON types the field may hold, comma-separated (e.g. 'number,integer'), or '*'.
-- ARGV[4]: an expiry in milliseconds to re-arm on the document, or 0.
-- ARGV[5..]: the operands: set: the JSON value; incr, mul: the operand, the lowest and the
--            highest value of the field's integer type (decimal text); fincr, fmul: the
--            operand; append: the JSON string to append.
-- Errors: NOTFOUND; WRONGTYPE <redis type> (the key is not a document); TYPEMISMATCH
-- <json type, or 'nothing' when the path is absent>; OVERFLOW (the result would leave the
-- field's integer type).
-- Returns the field's value afterwards as JSON text: a one-element array.
local key, op, path, want = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[4])

local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then
  return redis.error_reply('NOTFOUND no document at this key')
end
if kind ~= 'ReJSON-RL' then
  return redis.error_reply('WRONGTYPE ' .. kind)
end
local found = redis.call('JSON.TYPE', key, path)[1] or 'nothing'
if want ~= '*' and not string.find(',' .. want .. ',', ',' .. found .. ',', 1, true) then
  return redis.error_reply('TYPEMISMATCH ' .. found)
end

-- Exact integer arithmetic on decimal text: Lua numbers are doubles, exact only to 2^53.
local function strip(digits)
  digits = string.gsub(digits, '^0+', '')
  if digits == '' then
    return '0'
  end
  return digits
end

local function split(n)
  if string.sub(n, 1, 1) == '-' then
    return true, string.sub(n, 2)
  end
  return false, n
end

local function signed(negative, digits)
  if negative and digits ~= '0' then
    return '-' .. digits
  end
  return digits
end

local function ucmp(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

local function uadd(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = carry
    if i > 0 then s = s + string.byte(a, i) - 48 end
    if j > 0 then s = s + string.byte(b, j) - 48 end
    table.insert(out, 1, s % 10)
    carry = math.floor(s / 10)
    i, j = i - 1, j - 1
  end
  return strip(table.concat(out))
end

local function usub(a, b) -- a >= b
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local s = string.byte(a, i) - 48 - borrow
    if j > 0 then s = s - (string.byte(b, j) - 48) end
    if s < 0 then
      s, borrow = s + 10, 1
    else
      borrow = 0
    end
    table.insert(out, 1, s)
    i, j = i - 1, j - 1
  end
  return strip(table.concat(out))
end

local function umul(a, b)
  local out = {}
  for k = 1, #a + #b do
    out[k] = 0
  end
  for i = #a, 1, -1 do
    for j = #b, 1, -1 do
      local p = (string.byte(a, i) - 48) * (string.byte(b, j) - 48) + out[i + j]
      out[i + j] = p % 10
      out[i + j - 1] = out[i + j - 1] + math.floor(p / 10)
    end
  end
  for k = #out, 2, -1 do
    out[k - 1] = out[k - 1] + math.floor(out[k] / 10)
    out[k] = out[k] % 10
  end
  return strip(table.concat(out))
end

local function add(x, y)
  local xn, xd = split(x)
  local yn, yd = split(y)
  if xn == yn then
    return signed(xn, uadd(xd, yd))
  end
  local c = ucmp(xd, yd)
  if c >= 0 then
    return signed(xn, usub(xd, yd))
  end
  return signed(yn, usub(yd, xd))
end

local function mul(x, y)
  local xn, xd = split(x)
  local yn, yd = split(y)
  return signed(xn ~= yn, umul(xd, yd))
end

local function cmp(x, y)
  local xn, xd = split(x)
  local yn, yd = split(y)
  if xn ~= yn then
    return xn and -1 or 1
  end
  local c = ucmp(xd, yd)
  if xn then
    return -c
  end
  return c
end

if op == 'incr' or op == 'mul' then
  local current = string.sub(redis.call('JSON.GET', key, path), 2, -2)
  local result
  if op == 'incr' then
    result = add(current, ARGV[5])
  else
    result = mul(current, ARGV[5])
  end
  if cmp(result, ARGV[6]) < 0 or cmp(result, ARGV[7]) > 0 then
    return redis.error_reply('OVERFLOW the result leaves the field type')
  end
  redis.call('JSON.SET', key, path, result)
elseif op == 'set' then
  redis.call('JSON.SET', key, path, ARGV[5])
elseif op == 'fincr' then
  redis.call('JSON.NUMINCRBY', key, path, ARGV[5])
elseif op == 'fmul' then
  redis.call('JSON.NUMMULTBY', key, path, ARGV[5])
elseif op == 'append' then
  redis.call('JSON.STRAPPEND', key, path, ARGV[5])
elseif op == 'toggle' then
  redis.call('JSON.TOGGLE', key, path)
elseif op ~= 'get' then
  return redis.error_reply('ERR unknown field operation ' .. op)
end
if ttl > 0 then
  redis.call('PEXPIRE', key, ttl)
end
return redis.call('JSON.GET', key, path)
