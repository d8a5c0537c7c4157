-- ARGV[3] = task id. PENDING/WAITING -> CANCELLED; RUNNING -> cancellation requested.
-- Returns the row after the change (unchanged if final), or false for an unknown id.
local id = ARGV[3]
local tk = tkey(id)
local v = redis.call('HMGET', tk, 'st', 'q')
if not v[1] then return false end
if v[1] == 'pending' or v[1] == 'waiting' then
  if v[1] == 'pending' then unqueue(id, v[2]) end
  redis.call('HSET', tk, 'et', 'Cancelled', 'em', 'cancelled before it started')
  finish(id, v[1], 'cancelled')
  trim()
elseif v[1] == 'running' then
  redis.call('HSET', tk, 'cr', '1')
end
return row(id)
