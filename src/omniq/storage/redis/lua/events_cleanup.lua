-- KEYS[1] = event key prefix. ARGV[1] = '(' .. cutoff us (exclusive), [2] = at most this many
-- per call. Deletes older events with their index entries; returns how many.
local E = KEYS[1]
local ids = redis.call('ZRANGEBYSCORE', E .. ':all', '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local ek = E .. ':event:' .. id
  local v = redis.call('HMGET', ek, 't', 'y', 'q', 's')
  redis.call('ZREM', E .. ':all', id)
  if v[1] then redis.call('ZREM', E .. ':task:' .. v[1], id) end
  if v[2] then redis.call('ZREM', E .. ':type:' .. v[2], id) end
  if v[3] then redis.call('ZREM', E .. ':queue:' .. v[3], id) end
  if v[4] then redis.call('ZREM', E .. ':sched:' .. v[4], id) end
  redis.call('DEL', ek)
end
return #ids
