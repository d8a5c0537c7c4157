-- ARGV[3] = queue ('' = every queue), [4] = at most this many per (queue, status) and call,
-- [5...] = the statuses to delete (never running). Deletes those tasks; returns how many.
local q, limit = ARGV[3], tonumber(ARGV[4])
local queues = {q}
if q == '' then queues = redis.call('SMEMBERS', P .. ':queues') end
local count = 0
for _, name in ipairs(queues) do
  for i = 5, #ARGV do
    for _, id in ipairs(redis.call('ZRANGE', idx(name, ARGV[i]), 0, limit - 1)) do
      count = count + forget(id)
    end
  end
end
return count
