-- ARGV[3] = n, then (task id, claim, progress envelope) triples: each running task's progress,
-- written only under its current claim (see SupportsProgress). Returns 1 (written) or 0 each.
local n = tonumber(ARGV[3])
local out = {}
for i = 1, n do
  local id, claim = ARGV[1 + 3 * i], ARGV[2 + 3 * i]
  local tk = tkey(id)
  local v = redis.call('HMGET', tk, 'st', 'c')
  if v[1] == 'running' and v[2] == claim then
    redis.call('HSET', tk, 'pg', ARGV[3 + 3 * i])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
