-- KEYS[1] = event key prefix. ARGV[1] = task id, [2] = schedule id, [3] = queue ('' = any),
-- [4] = lowest score ('-inf' or us, inclusive), [5] = highest ('+inf' or '(us', exclusive),
-- [6] = offset, [7] = limit, [8] = '1' for newest first, [9..] = event types (none = any).
-- Walks the most selective index in time order and filters the rest; equal timestamps come in
-- id order, as sorted sets order equal scores by member.
local E = KEYS[1]
local task, sched, queue, lo, hi = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local offset, limit, desc = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8] == '1'
if limit == 0 then return {} end
local types, ntypes = {}, #ARGV - 8
for i = 9, #ARGV do types[ARGV[i]] = true end
local filters = (task ~= '' and 1 or 0) + (sched ~= '' and 1 or 0) + (queue ~= '' and 1 or 0)
  + (ntypes > 0 and 1 or 0)
local key
if task ~= '' then key = E .. ':task:' .. task
elseif sched ~= '' then key = E .. ':sched:' .. sched
elseif queue ~= '' then key = E .. ':queue:' .. queue
elseif ntypes == 1 then key = E .. ':type:' .. ARGV[9]
else key = E .. ':all' end
-- when the index alone answers the query, offset is applied by Redis itself
local exact = filters == 0 or (filters == 1 and (ntypes == 0 or ntypes == 1))
local pos, skipped = 0, 0
if exact then pos, skipped = offset, offset end
local CHUNK = 500
local out = {}
while #out < limit do
  local ids
  if desc then
    ids = redis.call('ZREVRANGEBYSCORE', key, hi, lo, 'LIMIT', pos, CHUNK)
  else
    ids = redis.call('ZRANGEBYSCORE', key, lo, hi, 'LIMIT', pos, CHUNK)
  end
  pos = pos + #ids
  for _, id in ipairs(ids) do
    local v = redis.call('HMGET', E .. ':event:' .. id, 't', 'y', 'q', 's', 'j')
    if v[5] and (task == '' or v[1] == task) and (sched == '' or v[4] == sched)
        and (queue == '' or v[3] == queue) and (ntypes == 0 or types[v[2]]) then
      if skipped < offset then
        skipped = skipped + 1
      else
        out[#out + 1] = v[5]
        if #out >= limit then break end
      end
    end
  end
  if #ids < CHUNK then break end
end
return out
