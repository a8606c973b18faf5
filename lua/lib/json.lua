-- rapyer's Lua library: scanning compact JSON text (as RedisJSON writes it) without
-- decoding it. Part of the field script and of the block runtime (see src/script/lua.rs).

-- The end of the JSON value starting at position i of compact JSON text s.
local function skip(s, i)
  local c = string.byte(s, i)
  if c == 34 then
    local j = i + 1
    while true do
      local q = string.find(s, '["\\]', j)
      if string.byte(s, q) == 92 then
        j = q + 2
      else
        return q
      end
    end
  elseif c == 91 or c == 123 then
    local depth, j = 0, i
    while true do
      local q = string.find(s, '[%[%]{}"]', j)
      local b = string.byte(s, q)
      if b == 34 then
        j = skip(s, q) + 1
      elseif b == 91 or b == 123 then
        depth, j = depth + 1, q + 1
      else
        depth, j = depth - 1, q + 1
        if depth == 0 then
          return q
        end
      end
    end
  end
  local q = string.find(s, '[,%]}]', i)
  if q then
    return q - 1
  end
  return #s
end

-- The JSON type (as JSON.TYPE names it) of the JSON value starting at byte i of s: an
-- integer has no '.', 'e' or 'E'; ']' (the end of an empty JSON.GET reply, '[]') is
-- 'nothing'.
local function json_type(s, i)
  local c = string.byte(s, i)
  if c == 34 then
    return 'string'
  elseif c == 91 then
    return 'array'
  elseif c == 123 then
    return 'object'
  elseif c == 116 or c == 102 then
    return 'boolean'
  elseif c == 110 then
    return 'null'
  elseif c == 93 then
    return 'nothing'
  elseif string.find(s, '[.eE]', i) then
    return 'number'
  end
  return 'integer'
end
