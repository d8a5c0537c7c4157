-- KEYS[2] (optional) = result key prefix: results are then written in this same step.
-- ARGV[3] = n, then 6 values per completion: task id, claim, result payload ('' = none),
-- result expiry in ms for PEXPIREAT ('' = never), the same in us, schedule id ('' = none).
-- Returns per completion 0 for a stale claim (its result is not written), 1 when it is
-- acknowledged, 2 when it is acknowledged and tasks wait on it (B:deps:<id> exists): the caller
-- then asks for those dependents, and skips that round trip for the others.
local R = KEYS[2]
local n = tonumber(ARGV[3])
local out = {}
local written, payloads = {}, {}
for i = 1, n do
  local b = 3 + (i - 1) * 6
  local id, claim, payload, pxat, exp_us, sid = unpack(ARGV, b + 1, b + 6)
  local v = redis.call('HMGET', tkey(id), 'st', 'c', 'q', 'sq')
  if v[1] == 'running' and v[2] == claim then
    finish(id, 'running', 'success', v[3], v[4])
    if R and payload ~= '' then
      write_result(R, id, payload, pxat, exp_us, sid)
      written[#written + 1] = id
      payloads[#payloads + 1] = payload
    end
    out[i] = 1 + redis.call('EXISTS', P .. ':deps:' .. id)
  else
    out[i] = 0
  end
end
if #written > 0 then notify(R, written, payloads, NOW) end
trim()
return out
