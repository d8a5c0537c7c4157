-- KEYS[1] = result key prefix. ARGV[1] = now (us), [2] = at most this many per call.
-- Redis already deleted most of these by their native expiry; this removes what is left and
-- counts them. Returns how many expired results were found.
local R = KEYS[1]
local ids = redis.call('ZRANGEBYSCORE', R .. ':expiry', '-inf', ARGV[1], 'LIMIT', 0,
                       tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('UNLINK', R .. ':result:' .. id)
  redis.call('ZREM', R .. ':expiry', id)
end
return #ids
