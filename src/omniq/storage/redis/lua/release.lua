-- ARGV[3] = task id, [4] = claim, [5] = eta in us or '' (ready now). Hands a running task
-- back: PENDING (at its new eta when given), the attempt refunded; a task asked to cancel ends
-- CANCELLED instead. Returns the row, or false for a stale claim.
local id, claim = ARGV[3], ARGV[4]
local tk = tkey(id)
local v = redis.call('HMGET', tk, 'st', 'c', 'cr', 'att', 'q', 'sq')
if v[1] ~= 'running' or v[2] ~= claim then return false end
if v[3] == '1' then
  -- handing back must not lose a cancellation: the next claimer would never hear of it
  redis.call('HSET', tk, 'et', 'Cancelled', 'em', 'cancelled while running')
  finish(id, 'running', 'cancelled')
  trim()
else
  local att = tonumber(v[4]) - 1
  if att < 0 then att = 0 end
  set_status(id, v[5], v[6], 'running', 'pending')
  redis.call('HSET', tk, 'att', att)
  redis.call('HDEL', tk, 'c', 'le', 'w', 'sa', 'cr')
  redis.call('ZREM', P .. ':leases', id)
  if ARGV[5] and ARGV[5] ~= '' then redis.call('HSET', tk, 'eta', ARGV[5]) end
  push(id, NOW)
  wake(v[5], 1)
end
return row(id)
