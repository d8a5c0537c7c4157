-- ARGV[3] = new lease deadline, [4] = n, then (task id, claim) pairs.
-- Returns 'ok', 'cancel' (renewed, but cancellation was requested) or 'lost' per pair.
local until_ = ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
for i = 1, n do
  local id, claim = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  local tk = tkey(id)
  local v = redis.call('HMGET', tk, 'st', 'c', 'cr')
  if v[1] == 'running' and v[2] == claim then
    redis.call('HSET', tk, 'le', until_)
    redis.call('ZADD', P .. ':leases', until_, id)
    out[i] = (v[3] == '1') and 'cancel' or 'ok'
  else
    out[i] = 'lost'
  end
end
return out
