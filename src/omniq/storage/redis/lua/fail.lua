-- ARGV[3] = task id, [4] = claim, [5] = 'pending' | 'dead' | 'cancelled', [6..8] = error type,
-- message, traceback ('' = None, '=text' = text), [9] = retry_at ('' = None).
-- The status is decided by the caller (omniq.queue.retry.decide): this only records it.
-- Returns the task row after the change, or false when the claim is stale.
local id, claim, status = ARGV[3], ARGV[4], ARGV[5]
local tk = tkey(id)
local v = redis.call('HMGET', tk, 'st', 'c', 'q', 'sq')
if v[1] ~= 'running' or v[2] ~= claim then return false end
opt(tk, 'et', ARGV[6])
opt(tk, 'em', ARGV[7])
opt(tk, 'etb', ARGV[8])
if status == 'pending' then
  set_status(id, v[3], v[4], 'running', 'pending')
  if ARGV[9] ~= '' then
    redis.call('HSET', tk, 'eta', ARGV[9])
  else
    redis.call('HDEL', tk, 'eta')
  end
  redis.call('HDEL', tk, 'c', 'le')
  redis.call('ZREM', P .. ':leases', id)
  push(id, NOW)
  wake(v[3], 1)
else
  finish(id, 'running', status)
  trim()
end
return row(id)
