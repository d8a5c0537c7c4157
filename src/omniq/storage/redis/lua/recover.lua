-- ARGV[3] = at most this many leases per call. Running tasks whose lease deadline has passed
-- go back to PENDING, or to DEAD on their last attempt. Returns {leases looked at, rows}.
local ids = redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', NOW_S, 'LIMIT', 0,
                       tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local tk = tkey(id)
  local v = redis.call('HMGET', tk, 'st', 'att', 'mx', 'q', 'sq')
  redis.call('ZREM', P .. ':leases', id)
  if v[1] == 'running' then
    local att, mx = tonumber(v[2]), tonumber(v[3])
    if att >= mx then
      redis.call('HSET', tk, 'et', 'LeaseExpired',
                 'em', string.format('lease expired on attempt %d of %d', att, mx))
      finish(id, 'running', 'dead')
    else
      set_status(id, v[4], v[5], 'running', 'pending')
      redis.call('HDEL', tk, 'eta', 'c', 'le')
      push(id, NOW)
      wake(v[4], 1)
    end
    out[#out + 1] = row(id)
  end
end
trim()
return {#ids, out}
