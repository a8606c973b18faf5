-- One rate-limiter check, GCRA with the semantics of redis-cell's CL.THROTTLE, in whole
-- microseconds. `now` (microseconds since the epoch) is the server's TIME (Redis 7+
-- replicates a script's effects, so TIME is allowed before a write). The test-clock script,
-- which no name reaches, is this text with the two clock lines below replaced by a read of
-- its fifth argument (src/script/mod.rs).
-- KEYS[1]: the subject's key, a string holding its theoretical arrival time (TAT).
-- ARGV[1]: the emission interval T; ARGV[2]: the tolerance tau = T * limit; ARGV[3]: the
-- increment T * quantity; ARGV[4]: the limit (max burst + 1). Every value stays below 2^53
-- (checked by the caller: tau and the increment at most 2^51, now below 2^52), so a Lua
-- double holds each exactly; each is written with '%.0f' (Redis passes a number argument as
-- 17 significant digits, exact here, but Lua's tostring keeps 14: one format, never wrong).
-- Replies {limited (0 or 1), limit, remaining, retry after (-1: not now or never), reset
-- after}, durations in microseconds.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'string' and t ~= 'none' then
  return failure('type', 0, 1, '', 'limiter', t)
end
local interval, tau, increment = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local tat = now
if t == 'string' then
  local stored = redis.call('GET', KEYS[1])
  tat = tonumber(stored)
  if tat == nil or tat ~= math.floor(tat) or tat < 0 or tat >= 9007199254740992 then
    return failure('type', 0, 1, '', 'limiter', 'string ' .. string.sub(stored, 1, 40))
  end
  if tat < now then
    tat = now
  end
end
local new_tat = tat + increment
local diff = now - (new_tat - tau)
local limited, retry, ttl = 0, -1, 0
if diff < 0 then
  limited = 1
  if increment <= tau then
    retry = -diff
  end
  ttl = tat - now
else
  ttl = new_tat - now
  if ttl > 0 then
    -- Expires when the TAT is reached: the key then means what a missing one means.
    redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
      string.format('%.0f', math.ceil(ttl / 1000)))
  end
end
local next = tau - ttl
local remaining = 0
if next > 0 then
  remaining = math.floor(next / interval)
end
return { limited, limit, remaining, retry, ttl }
