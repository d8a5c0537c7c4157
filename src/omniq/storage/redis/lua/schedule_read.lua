-- ARGV[3] = 'all' (every schedule, in creation order) or 'due' (active ones whose next run is
-- at or before now), [4] = a schedule id for 'one'. Returns {id, version, payload} triples.
local ids
if ARGV[3] == 'due' then
  ids = redis.call('ZRANGEBYSCORE', P .. ':sched_due', '-inf', NOW_S)
elseif ARGV[3] == 'one' then
  ids = {ARGV[4]}
else
  ids = redis.call('ZRANGE', P .. ':scheds', 0, -1)
end
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', P .. ':sched:' .. id, 'ver', 'p')
  if v[2] then
    out[#out + 1] = id
    out[#out + 1] = v[1]
    out[#out + 1] = v[2]
  end
end
return out
