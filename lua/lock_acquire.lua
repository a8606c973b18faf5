-- Take a model's lock and read the model in the same atomic step.
-- KEYS[1]: the lock key; KEYS[2]: the model key.
-- ARGV[1]: the holder's token; ARGV[2]: the lock's expiry in milliseconds; ARGV[3]: the
-- model's expiry to re-arm on this read in milliseconds (refresh_on_read), or 0.
-- Returns {1, document JSON} when taken, {0, milliseconds the lock has left} when another
-- holder has it. A missing model or a key of another type is a typed failure
-- (lua/lib/failure.lua, put before this script); neither takes the lock.
local refused = not_a_document(2, true)
if refused then
  return refused
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local rearm = tonumber(ARGV[3])
if rearm > 0 then
  redis.call('PEXPIRE', KEYS[2], rearm)
end
return {1, redis.call('JSON.GET', KEYS[2])}
