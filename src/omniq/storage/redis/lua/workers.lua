-- The worker registry: B:workers hash (worker id -> JSON record) and B:workers:exp sorted set
-- (worker id -> expiry in us). ARGV[3] = 'save' (then id, payload, expiry), 'list' or
-- 'delete' (then id). A worker killed without a goodbye leaves a record that 'list' drops
-- once its expiry has passed.
local hk, ek = P .. ':workers', P .. ':workers:exp'
local op = ARGV[3]
if op == 'save' then
  redis.call('HSET', hk, ARGV[4], ARGV[5])
  redis.call('ZADD', ek, ARGV[6], ARGV[4])
  return 1
elseif op == 'delete' then
  redis.call('ZREM', ek, ARGV[4])
  return redis.call('HDEL', hk, ARGV[4])
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', ek, '-inf', NOW_S)) do
  redis.call('ZREM', ek, id)
  redis.call('HDEL', hk, id)
end
return redis.call('HVALS', hk)
