-- A count-min sketch of RedisBloom, only where one is (or nothing is), never half-written.
-- KEYS[1]: the sketch. ARGV[1]: 'reserve' (ARGV[2] the error, ARGV[3] the probability),
-- 'incr' (ARGV[2] and ARGV[3] the error and probability of a sketch created by this call,
-- then pairs of an item's JSON text and a count from 1 to 4294967294) or 'query' (ARGV[2..]
-- the items' JSON text).
-- reserve replies 1 when it created the sketch, 0 when one was already there (unchanged);
-- incr replies each item's new estimate, query each item's estimate (0 for every item of a
-- missing sketch).
-- CMS.INCRBY writes before it reports an overflow (its counters are 32-bit and stop at
-- 4294967295, and the sketch's total count still grows), so every sum is checked first.
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'CMSk-TYPE' and t ~= 'none' then
  return failure('type', 0, 1, '', 'sketch', t)
end
local op = ARGV[1]
if op == 'reserve' then
  if t ~= 'none' then
    return 0
  end
  redis.call('CMS.INITBYPROB', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if op == 'query' then
  if t == 'none' then
    local zero = {}
    for i = 2, #ARGV do
      zero[i - 1] = 0
    end
    return zero
  end
  return redis.call('CMS.QUERY', KEYS[1], unpack(ARGV, 2))
end
-- incr: the sum each item would reach, one item named several times counted once per time.
local sums, items = {}, {}
for i = 4, #ARGV, 2 do
  local item = ARGV[i]
  if sums[item] == nil then
    sums[item] = 0
    items[#items + 1] = item
  end
  sums[item] = sums[item] + tonumber(ARGV[i + 1])
end
if t == 'none' then
  redis.call('CMS.INITBYPROB', KEYS[1], ARGV[2], ARGV[3])
else
  local now = redis.call('CMS.QUERY', KEYS[1], unpack(items))
  for i, item in ipairs(items) do
    sums[item] = sums[item] + now[i]
  end
end
for _, item in ipairs(items) do
  if sums[item] >= 4294967295 then
    return failure('overflow', 0, 1, '', '0', '4294967295')
  end
end
return redis.call('CMS.INCRBY', KEYS[1], unpack(ARGV, 4))
