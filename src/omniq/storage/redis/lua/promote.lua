-- ARGV[3..] = task ids. WAITING -> PENDING (compare-and-set on the status): into the ready set,
-- or the delayed set until its eta, and claimers of its queue are woken as by an enqueue.
-- Ids not WAITING are skipped. Returns the rows of the tasks that moved.
local out = {}
local woken = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local v = redis.call('HMGET', tkey(id), 'st', 'q', 'sq')
  if v[1] == 'waiting' then
    set_status(id, v[2], v[3], 'waiting', 'pending')
    push(id, NOW)
    woken[v[2]] = (woken[v[2]] or 0) + 1
    out[#out + 1] = row(id)
  end
end
for q, count in pairs(woken) do wake(q, count) end
return out
