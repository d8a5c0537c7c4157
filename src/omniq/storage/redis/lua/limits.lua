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
--   'sweep' n                         deletes up to n buckets full again and n keys without a
--                                     live slot (and their index entries); {deleted, looked at}
-- B:limits:buckets (a set) and B:limits:slots (a hash key -> limit) list the keys for 'usage'.
-- A bucket is full again at its tat, and a missing bucket is a full one: its hash expires then
-- (PEXPIRE, on the server's clock). A slot set expires with its last holder. The index entries
-- are due for 'sweep' at the same times (a key also when its last slot is released), kept in
-- the sorted sets B:limits:bdue and B:limits:sdue (key -> tat / latest expiry), so a sweep
-- reads only what is due.
local op = ARGV[3]
if op == 'take' then
  local key, interval, burst = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local bk = P .. ':rl:' .. key
  local tat = tonumber(redis.call('HGET', bk, 'tat') or NOW_S)
  local allowed_from = tat - (burst - 1) * interval
  if allowed_from > NOW then return allowed_from - NOW end
  if tat < NOW then tat = NOW end
  tat = tat + interval
  redis.call('HSET', bk, 'tat', tat, 'iv', interval, 'b', burst)
  redis.call('PEXPIRE', bk, math.floor((tat - NOW) / 1000) + 1)
  redis.call('SADD', P .. ':limits:buckets', key)
  redis.call('ZADD', P .. ':limits:bdue', tat, key)
  return 0
elseif op == 'acquire' then
  local key, holder, limit = ARGV[4], ARGV[5], tonumber(ARGV[6])
  local sk = P .. ':slots:' .. key
  redis.call('ZREMRANGEBYSCORE', sk, '-inf', NOW_S)
  redis.call('HSET', P .. ':limits:slots', key, limit)
  if redis.call('ZSCORE', sk, holder) or redis.call('ZCARD', sk) < limit then
    redis.call('ZADD', sk, ARGV[7], holder)
    local last = tonumber(redis.call('ZRANGE', sk, -1, -1, 'WITHSCORES')[2])
    redis.call('PEXPIRE', sk, math.max(1, math.floor((last - NOW) / 1000) + 1))
    redis.call('ZADD', P .. ':limits:sdue', last, key)
    return 1
  end
  return 0
elseif op == 'release' then
  local key = ARGV[4]
  local n = redis.call('ZREM', P .. ':slots:' .. key, ARGV[5])
  if n == 1 and redis.call('EXISTS', P .. ':slots:' .. key) == 0 then
    -- its last slot went (Redis deleted the empty set): the next sweep drops the key, as the
    -- other stores do (until then 'usage' shows it with nothing running)
    redis.call('ZADD', P .. ':limits:sdue', NOW_S, key)
  end
  return n
elseif op == 'sweep' then
  local n, gone, seen = tonumber(ARGV[4]), 0, 0
  local bdue, sdue = P .. ':limits:bdue', P .. ':limits:sdue'
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', bdue, '-inf', NOW_S, 'LIMIT', 0, n)) do
    redis.call('DEL', P .. ':rl:' .. key)
    redis.call('SREM', P .. ':limits:buckets', key)
    redis.call('ZREM', bdue, key)
    gone, seen = gone + 1, seen + 1
  end
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', sdue, '-inf', NOW_S, 'LIMIT', 0, n)) do
    local sk = P .. ':slots:' .. key
    redis.call('ZREMRANGEBYSCORE', sk, '-inf', NOW_S)
    local last = redis.call('ZRANGE', sk, -1, -1, 'WITHSCORES')
    if last[2] then  -- a holder still live (on this caller's clock): due again at its expiry
      redis.call('ZADD', sdue, last[2], key)
    else
      redis.call('DEL', sk)
      redis.call('HDEL', P .. ':limits:slots', key)
      redis.call('ZREM', sdue, key)
      gone = gone + 1
    end
    seen = seen + 1
  end
  return {gone, seen}
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
