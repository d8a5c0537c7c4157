-- ARGV[3] = queue, [4] = at most this many per status and call. Deletes waiting tasks
-- (pending, delayed or waiting for dependencies) of the queue; returns how many.
local q, limit = ARGV[3], tonumber(ARGV[4])
local count = 0
for _, st in ipairs({'pending', 'waiting'}) do
  for _, id in ipairs(redis.call('ZRANGE', idx(q, st), 0, limit - 1)) do
    count = count + forget(id)
  end
end
return count
