-- ARGV[3] = schedule id, [4] = payload, [5] = state, [6] = next_run_at ('' = None),
-- [7] = expected version ('' = write unconditionally, as save_schedule does).
-- Returns 1 when written, 0 when the version moved on (another writer won), -1 when unknown.
local id = ARGV[3]
local sk = P .. ':sched:' .. id
if ARGV[7] ~= '' then
  local ver = redis.call('HGET', sk, 'ver')
  if not ver then return -1 end
  if ver ~= ARGV[7] then return 0 end
end
redis.call('HSET', sk, 'p', ARGV[4], 'st', ARGV[5])
redis.call('HINCRBY', sk, 'ver', 1)
if not redis.call('ZSCORE', P .. ':scheds', id) then
  redis.call('ZADD', P .. ':scheds', redis.call('INCR', P .. ':sched_seq'), id)
end
if ARGV[5] == 'active' and ARGV[6] ~= '' then
  redis.call('ZADD', P .. ':sched_due', ARGV[6], id)
else
  redis.call('ZREM', P .. ':sched_due', id)
end
return 1
