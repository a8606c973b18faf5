-- rapyer's Lua library: exact integer arithmetic on decimal text. Part of the field script
-- (lua/field.lua) and of the block runtime (lua/block.lua), assembled in Rust (see
-- src/script/lua.rs).

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

-- x + y and x * y on integer texts, exactly: in doubles while the result stays below 2^53
-- (both sides at most 15 characters for a sum, 15 together for a product), which is
-- several times faster than digit by digit; beyond, digit by digit.
local function sum(x, y)
  if #x <= 15 and #y <= 15 then
    return string.format('%.0f', tonumber(x) + tonumber(y))
  end
  return add(x, y)
end

local function product(x, y)
  if #x + #y <= 15 then
    local v = tonumber(x) * tonumber(y)
    if v == 0 then
      return '0' -- not -0
    end
    return string.format('%.0f', v)
  end
  return mul(x, y)
end

-- Formats a float so that it stays a float (JSON text with a '.' or an exponent); nil when
-- it is not finite.
local function float(x)
  if x ~= x or x == math.huge or x == -math.huge then
    return nil
  end
  local s = string.format('%.17g', x)
  if not string.find(s, '[.e]') then
    s = s .. '.0'
  end
  return s
end
