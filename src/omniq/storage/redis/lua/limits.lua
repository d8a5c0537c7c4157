-- Rate-limit buckets and concurrency keys (omniq.storage.base.limits), shared by every worker of
-- the project. ARGV[3] is the operation:
--   'take' key interval_us burst      a token from bucket B:rl:<key> (GCRA: one time per bucket,
--                                     the "theoretical arrival time" tat); returns 0 when taken,
--                                     else the microseconds until the next token is due
--   'acquire' key holder limit exp_us a slot in the sorted set B:slots:<key> (holder -> expiry);
--                                     holders past their expiry no longer count; 1 or 0
--   'release' key holder
--   'usage'                           {bucket rows (key, tat, interval, burst)...}, {slot rows
--                                     (key, limit, live holders)...}
-- B:limits:buckets (a set) and B:limits:slots (a hash key -> limit) list the keys for 'usage'.
local op = ARGV[3]
if op == 'take' then
  local key, interval, burst = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local bk = P .. ':rl:' .. key
  local tat = tonumber(redis.call('HGET', bk, 'tat') or NOW_S)
  local allowed_from = tat - (burst - 1) * interval
  if allowed_from > NOW then return allowed_from - NOW end
  if tat < NOW then tat = NOW end
  redis.call('HSET', bk, 'tat', tat + interval, 'iv', interval, 'b', burst)
  redis.call('SADD', P .. ':limits:buckets', key)
  return 0
elseif op == 'acquire' then
  local key, holder, limit = ARGV[4], ARGV[5], tonumber(ARGV[6])
  local sk = P .. ':slots:' .. key
  redis.call('ZREMRANGEBYSCORE', sk, '-inf', NOW_S)
  redis.call('HSET', P .. ':limits:slots', key, limit)
  if redis.call('ZSCORE', sk, holder) or redis.call('ZCARD', sk) < limit then
    redis.call('ZADD', sk, ARGV[7], holder)
    return 1
  end
  return 0
elseif op == 'release' then
  return redis.call('ZREM', P .. ':slots:' .. ARGV[4], ARGV[5])
end
local buckets, slots = {}, {}
for _, key in ipairs(redis.call('SMEMBERS', P .. ':limits:buckets')) do
  local v = redis.call('HMGET', P .. ':rl:' .. key, 'tat', 'iv', 'b')
  if v[1] then table.insert(buckets, {key, v[1], v[2], v[3]}) end
end
local limits = redis.call('HGETALL', P .. ':limits:slots')
for i = 1, #limits, 2 do
  local live = redis.call('ZCOUNT', P .. ':slots:' .. limits[i], '(' .. NOW_S, '+inf')
  table.insert(slots, {limits[i], limits[i + 1], live})
end
return {buckets, slots}
