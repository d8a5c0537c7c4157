-- KEYS[1] = result key prefix. ARGV[1] = now (us), [2] = n, then 5 values per result: task id,
-- payload, expiry in ms for PEXPIREAT ('' = never), the same in us, schedule id ('' = none).
local R = KEYS[1]
local n = tonumber(ARGV[2])
local ids, payloads = {}, {}
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local id, payload, pxat, exp_us, sid = unpack(ARGV, b + 1, b + 5)
  write_result(R, id, payload, pxat, exp_us, sid)
  ids[i] = id
  payloads[i] = payload
end
notify(R, ids, payloads, tonumber(ARGV[1]))
return n
