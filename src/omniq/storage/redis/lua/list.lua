-- ARGV[3] = queue ('' = all), [4] = status ('' = all), [5] = offset, [6] = limit.
-- Rows in enqueue order: one index set when both filters are given (or neither), else a merge
-- of the first offset+limit entries of each candidate set.
local q, st = ARGV[3], ARGV[4]
local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
if limit == 0 then return {} end
local want = offset + limit
local ids
if q ~= '' and st ~= '' then
  ids = redis.call('ZRANGE', idx(q, st), offset, want - 1)
elseif q == '' and st == '' then
  ids = redis.call('ZRANGE', P .. ':all', offset, want - 1)
else
  local keys = {}
  if q ~= '' then
    for _, s in ipairs(STATUSES) do keys[#keys + 1] = idx(q, s) end
  else
    for _, name in ipairs(redis.call('SMEMBERS', P .. ':queues')) do keys[#keys + 1] = idx(name, st) end
  end
  local items = {}
  for _, k in ipairs(keys) do
    local r = redis.call('ZRANGE', k, 0, want - 1, 'WITHSCORES')
    for j = 1, #r, 2 do items[#items + 1] = {tonumber(r[j + 1]), r[j]} end
  end
  table.sort(items, function(a, b) return a[1] < b[1] end)
  ids = {}
  for j = offset + 1, math.min(want, #items) do ids[#ids + 1] = items[j][2] end
end
local out = {}
for _, id in ipairs(ids) do out[#out + 1] = row(id) end
return out
