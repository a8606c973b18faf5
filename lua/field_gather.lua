-- Several calls of one field operation, gathered into one script call (src/script/gather.rs).
-- Before this loop, the script (src/script/lua.rs) defines the operation's fast path as
-- FAST (nil when it has none), reading the call's keys and arguments in place at the offsets
-- KO and AO (NK keys, NA arguments), and the whole operation as `whole()`, reading the locals
-- KEYS and ARGV, which the loop sets to tables of the call's own keys and arguments only for
-- a call the fast path declined (returned nil, having written nothing).
-- CALLS_KEYS: every call's keys, call after call. CALLS_ARGV[1]: the number of calls, n;
-- CALLS_ARGV[2i] and CALLS_ARGV[2i+1]: call i's number of keys and of arguments; then every
-- call's arguments, call after call. The reply holds one entry per call, in order: its reply
-- (nil as false, which Redis sends as nil), or its error as an error entry. Each call runs
-- under pcall, so a call that fails fails alone: like the operation's own script, it fails
-- before it writes anything, and the calls after it still run.
local n = tonumber(CALLS_ARGV[1])
local replies = {}
local k, a = 0, 2 * n + 1
for i = 1, n do
  local nk, na = tonumber(CALLS_ARGV[2 * i]), tonumber(CALLS_ARGV[2 * i + 1])
  KO, AO, NK, NA = k, a, nk, na
  local done, reply = true, nil
  if FAST then
    done, reply = pcall(FAST)
  end
  if done and reply == nil then
    local keys, argv = {}, {}
    for j = 1, nk do
      keys[j] = CALLS_KEYS[k + j]
    end
    for j = 1, na do
      argv[j] = CALLS_ARGV[a + j]
    end
    KEYS, ARGV = keys, argv
    done, reply = pcall(whole)
  end
  k, a = k + nk, a + na
  if not done then
    -- The error a lone call would have replied: a command's error as the command gave it,
    -- a Lua error with the ERR code Redis puts before it.
    if type(reply) == 'table' and reply.err then
      reply = { err = reply.err }
    else
      local text = tostring(reply)
      if not string.match(text, '^%u+ ') then
        text = 'ERR ' .. text
      end
      reply = { err = text }
    end
  elseif reply == nil then
    reply = false
  end
  replies[i] = reply
end
return replies
