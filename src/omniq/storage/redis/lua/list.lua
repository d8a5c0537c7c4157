-- ARGV[3] = queue ('' = all), [4] = status ('' = all), [5] = offset, [6] = limit,
-- [7] = the id of the cursor task ('' = none; the page starts right after it), [8] = '1' for
-- newest first. Rows in enqueue order (the index sets are scored by enqueue sequence): one set
-- read from the cursor's score on when both filters are given (or neither), else a merge of the
-- first offset+limit entries of each candidate set from there. Returns false when the cursor
-- task does not exist.
local q, st = ARGV[3], ARGV[4]
local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local cursor, desc = ARGV[7], ARGV[8] == '1'
if limit == 0 then return {} end
local want = offset + limit
-- ZRANGE ... BYSCORE bounds, in the order REV wants them (max first)
local from, to = '-inf', '+inf'
if desc then from, to = '+inf', '-inf' end
if cursor ~= '' then
  local sq = redis.call('HGET', tkey(cursor), 'sq')
  if not sq then return false end
  from = '(' .. sq
end
local function range(key, first, count, scores)
  local args = {'ZRANGE', key, from, to, 'BYSCORE'}
  if desc then args[#args + 1] = 'REV' end
  args[#args + 1] = 'LIMIT'
  args[#args + 1] = first
  args[#args + 1] = count
  if scores then args[#args + 1] = 'WITHSCORES' end
  return redis.call(unpack(args))
end
local ids
if q ~= '' and st ~= '' then
  ids = range(idx(q, st), offset, limit, false)
elseif q == '' and st == '' then
  ids = range(P .. ':all', offset, limit, false)
else
  local keys = {}
  if q ~= '' then
    for _, s in ipairs(STATUSES) do keys[#keys + 1] = idx(q, s) end
  else
    for _, name in ipairs(redis.call('SMEMBERS', P .. ':queues')) do keys[#keys + 1] = idx(name, st) end
  end
  local items = {}
  for _, k in ipairs(keys) do
    local r = range(k, 0, want, true)
    for j = 1, #r, 2 do items[#items + 1] = {tonumber(r[j + 1]), r[j]} end
  end
  if desc then
    table.sort(items, function(a, b) return a[1] > b[1] end)
  else
    table.sort(items, function(a, b) return a[1] < b[1] end)
  end
  ids = {}
  for j = offset + 1, math.min(want, #items) do ids[#ids + 1] = items[j][2] end
end
local out = {}
for _, id in ipairs(ids) do out[#out + 1] = row(id) end
return out
