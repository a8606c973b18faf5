-- The operations of RedisBloom's Bloom filters and count-min sketches, each only on a key
-- that holds that structure or nothing: BF.EXISTS on a key of another type answers 0
-- instead of refusing, so the type is checked here first, and nothing is ever half-written.
-- KEYS[1]: the structure. ARGV[1]: the operation, then its arguments (items as JSON text):
--   bf.reserve (error rate, capacity), bf.add (items), bf.exists (items);
--   cms.reserve (error, probability), cms.incr (the error and probability of a sketch this
--   call creates, then pairs of an item and a count from 1 to 4294967294), cms.query (items).
-- reserve replies 1 when it created the structure, 0 when one was already there
-- (unchanged); bf.add replies 1 per item that was new, 0 per item maybe seen before (BF.MADD
-- creates a missing filter with RedisBloom's defaults, error rate 0.01 and capacity 100,
-- expanding); bf.exists 1 per item maybe present; cms.incr each item's new estimate,
-- cms.query each item's estimate. On a missing key, bf.exists and cms.query answer 0 per
-- item and create nothing.
local op = ARGV[1]
local bloom = string.sub(op, 1, 3) == 'bf.'
local want, kind = 'CMSk-TYPE', 'sketch'
if bloom then
  want, kind = 'MBbloom--', 'bloom'
end
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= want and t ~= 'none' then
  return failure('type', 0, 1, '', kind, t)
end
if op == 'bf.reserve' or op == 'cms.reserve' then
  if t ~= 'none' then
    return 0
  end
  redis.call(bloom and 'BF.RESERVE' or 'CMS.INITBYPROB', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if op == 'bf.add' then
  return redis.call('BF.MADD', KEYS[1], unpack(ARGV, 2))
end
if op == 'bf.exists' or op == 'cms.query' then
  if t == 'none' then
    local zero = {}
    for i = 2, #ARGV do
      zero[i - 1] = 0
    end
    return zero
  end
  return redis.call(bloom and 'BF.MEXISTS' or 'CMS.QUERY', KEYS[1], unpack(ARGV, 2))
end
-- cms.incr: the sum each item would reach, an item named several times counted each time.
-- CMS.INCRBY writes before it reports an overflow (its counters are 32-bit and stop at
-- 4294967295, and the sketch's total count still grows), so every sum is checked first.
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
