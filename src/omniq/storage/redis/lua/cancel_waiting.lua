-- ARGV[3..] = pairs of task id and reason. WAITING -> CANCELLED with error type
-- 'DependencyFailed' and the reason as message; ids not WAITING are skipped.
-- Returns the rows of the tasks that moved.
local out = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local tk = tkey(id)
  if redis.call('HGET', tk, 'st') == 'waiting' then
    redis.call('HSET', tk, 'et', 'DependencyFailed', 'em', ARGV[i + 1])
    finish(id, 'waiting', 'cancelled')
    out[#out + 1] = row(id)
  end
end
trim()
return out
