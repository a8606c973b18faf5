-- A Bloom filter of RedisBloom, only where one is (or nothing is): BF.EXISTS on a key of
-- another type answers 0 instead of refusing, so the type is checked here first.
-- KEYS[1]: the filter. ARGV[1]: 'reserve' (ARGV[2] the error rate, ARGV[3] the capacity),
-- 'add' or 'exists' (ARGV[2..] the items, as their JSON text).
-- reserve replies 1 when it created the filter, 0 when one was already there (unchanged);
-- add replies 1 per item that was new, 0 per item maybe seen before (BF.ADD creates a
-- missing filter with RedisBloom's defaults, error rate 0.01 and capacity 100, expanding);
-- exists replies 1 per item maybe present, 0 per item certainly absent.
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'MBbloom--' and t ~= 'none' then
  return failure('type', 0, 1, '', 'bloom', t)
end
local op = ARGV[1]
if op == 'reserve' then
  if t ~= 'none' then
    return 0
  end
  redis.call('BF.RESERVE', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if op == 'add' then
  return redis.call('BF.MADD', KEYS[1], unpack(ARGV, 2))
end
if t == 'none' then
  local absent = {}
  for i = 2, #ARGV do
    absent[i - 1] = 0
  end
  return absent
end
return redis.call('BF.MEXISTS', KEYS[1], unpack(ARGV, 2))
