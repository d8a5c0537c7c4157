-- KEYS[1] = event key prefix, e.g. "omniq:events:{project}". ARGV[1] = n, then 7 values per
-- event: id, timestamp (us), task id, type, queue ('' = None), schedule id ('' = None), JSON.
-- Each event is a hash; sorted sets by timestamp index it overall, by task, type, queue and
-- schedule. Logging the same event id again replaces it.
local E = KEYS[1]
local n = tonumber(ARGV[1])
for i = 1, n do
  local b = 1 + (i - 1) * 7
  local id, ts, task, etype, q, sid, json = unpack(ARGV, b + 1, b + 7)
  local ek = E .. ':event:' .. id
  redis.call('HSET', ek, 'j', json, 't', task, 'y', etype, 'ts', ts)
  redis.call('ZADD', E .. ':all', ts, id)
  redis.call('ZADD', E .. ':task:' .. task, ts, id)
  redis.call('ZADD', E .. ':type:' .. etype, ts, id)
  if q ~= '' then
    redis.call('HSET', ek, 'q', q)
    redis.call('ZADD', E .. ':queue:' .. q, ts, id)
  end
  if sid ~= '' then
    redis.call('HSET', ek, 's', sid)
    redis.call('ZADD', E .. ':sched:' .. sid, ts, id)
  end
end
return n
