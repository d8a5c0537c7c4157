-- ARGV[3] = task id, [4] = '1' to reset attempts. DEAD/CANCELLED/EXPIRED/FAILED -> PENDING.
-- Returns the row, or false when the task is unknown or not in one of those states.
local REQUEUEABLE = {dead = true, cancelled = true, expired = true, failed = true}
local id = ARGV[3]
local tk = tkey(id)
local v = redis.call('HMGET', tk, 'st', 'q', 'sq')
if not v[1] or not REQUEUEABLE[v[1]] then return false end
set_status(id, v[2], v[3], v[1], 'pending')
if ARGV[4] == '1' then redis.call('HSET', tk, 'att', 0) end
redis.call('HDEL', tk, 'eta', 'exp', 'fa', 'c', 'w', 'le', 'et', 'em', 'etb', 'cr')
redis.call('ZREM', P .. ':finished', id)
push(id, NOW)
wake(v[2], 1)
return row(id)
