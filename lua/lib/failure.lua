-- rapyer's Lua library: the one shape of a typed failure, for the field script and the
-- block runtime alike, decoded by one Rust function (src/script/failure.rs).

-- The error reply of a typed failure: 'RAPYER ' and the JSON array [code, operation, key,
-- path, a, b]: the operation's number in a block (1-based; 0 outside a block), the key's
-- number in KEYS (0 for none), the JSONPath it is about, and two details, by code:
-- notfound (none); wrongtype (the key's Redis type); type (the JSON types wanted,
-- comma-separated or '*', and the JSON type found, 'nothing' when absent); index (the index
-- and the list's length); overflow (the lowest and the highest value allowed, as decimal
-- text; '' for a float that only must stay finite); slice (Python's message); script (the
-- Lua error's message).
local function failure(code, op, key, path, a, b)
  return redis.error_reply('RAPYER ' .. cjson.encode({ code, op, key, path, tostring(a or ''),
    tostring(b or '') }))
end

-- The typed failure for KEYS[i] when it holds anything but a JSON document, or nil when it
-- holds one; a missing key is a failure ('notfound') only when `required`.
local function not_a_document(i, required)
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t == 'ReJSON-RL' or (t == 'none' and not required) then
    return nil
  end
  if t == 'none' then
    return failure('notfound', 0, i, '$')
  end
  return failure('wrongtype', 0, i, '$', t)
end

-- The reply for a command tried before its checks that wrote nothing (a command that writes
-- nothing where it would fail, so that its checks run only then): `failed`, the failure the
-- checks found, else the command's own error err (an OOM refusal, say; pcall hands it over
-- as a table or as its text), else an error naming the path.
local function nothing_done(failed, err, path)
  if failed then
    return failed
  elseif type(err) == 'table' then
    return err
  elseif type(err) == 'string' then
    return redis.error_reply(err)
  end
  return redis.error_reply('ERR rapyer: the operation did nothing at ' .. path)
end

-- The typed failure for KEYS[i], a structure's companion key, when it holds anything but
-- `want` (a Redis type as TYPE names it: set, zset, hash) or nothing, or nil; `path` is the
-- structure's JSONPath.
local function not_a(i, want, path)
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t == want or t == 'none' then
    return nil
  end
  return failure('type', 0, i, path, want, t)
end

-- The typed failure for the first of KEYS that holds anything but a JSON document (a
-- missing key passes), or nil when every key passes.
local function not_all_documents()
  for i = 1, #KEYS do
    local bad = not_a_document(i, false)
    if bad then
      return bad
    end
  end
  return nil
end
