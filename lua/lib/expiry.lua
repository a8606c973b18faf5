-- rapyer's Lua library: re-arming the expiries of the documents a block changed or read, for
-- both block runtimes (lua/block.lua, lua/flat.lua; see src/script/lua.rs).

-- Re-arms each key's expiry: ARGV[2k - 1] (its write expiry in ms) for a key in wrote, else
-- ARGV[2k] (its read expiry); '0' is none.
local function rearm(wrote)
  for k = 1, #KEYS do
    local ttl = wrote[k] and ARGV[2 * k - 1] or ARGV[2 * k]
    if ttl ~= '0' then
      redis.call('PEXPIRE', KEYS[k], ttl)
    end
  end
end
