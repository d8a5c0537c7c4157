-- ARGV[3] = at most this many candidates per call. Waiting tasks past their expires_at end
-- EXPIRED. Returns {candidates looked at, rows}.
local ids = redis.call('ZRANGEBYSCORE', P .. ':expiry', '-inf', NOW_S, 'LIMIT', 0,
                       tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', P .. ':expiry', id)
  local tk = tkey(id)
  local v = redis.call('HMGET', tk, 'st', 'q', 'exp')
  if (v[1] == 'pending' or v[1] == 'waiting') and v[3] and tonumber(v[3]) <= NOW then
    if v[1] == 'pending' then unqueue(id, v[2]) end
    redis.call('HSET', tk, 'et', 'TaskExpired', 'em', 'expired before it started')
    finish(id, v[1], 'expired')
    out[#out + 1] = row(id)
  end
end
trim()
return {#ids, out}
