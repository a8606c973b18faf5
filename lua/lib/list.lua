-- rapyer's Lua library: Python's rules for list indices and slices, the one copy the field
-- script and the block runtime share (see src/script/lua.rs).

-- Python's list indexing: a negative index counts from the end; nil when out of range.
local function index(i, len)
  i = tonumber(i)
  if i < 0 then
    i = i + len
  end
  if i < 0 or i >= len then
    return nil
  end
  return i
end

-- Where Python's `list.insert(i, x)` puts x in a list of len elements: a negative index
-- counts from the end, and an index outside the list is clamped to it.
local function insert_at(i, len)
  i = tonumber(i)
  if i < 0 then
    i = math.max(i + len, 0)
  end
  return math.min(i, len)
end

-- Python's slice [start:stop:step] of a list of n elements (each given as decimal text, ''
-- when omitted; an omitted step is 1): the first index, the step, the number of elements
-- and the stop as adjusted (0-based); nil when the step is zero.
local function slice(start, stop, step, n)
  step = step == '' and 1 or tonumber(step)
  if step == 0 then
    return nil
  end
  local function adjust(x, default)
    if x == '' then
      return default
    end
    x = tonumber(x)
    if x < 0 then
      x = x + n
      if x < 0 then
        x = step < 0 and -1 or 0
      end
    elseif x >= n then
      x = step < 0 and n - 1 or n
    end
    return x
  end
  start = adjust(start, step < 0 and n - 1 or 0)
  stop = adjust(stop, step < 0 and -1 or n)
  local count = 0
  if step < 0 then
    if stop < start then
      count = math.floor((start - stop - 1) / -step) + 1
    end
  elseif start < stop then
    count = math.floor((stop - start - 1) / step) + 1
  end
  return start, step, count, stop
end
