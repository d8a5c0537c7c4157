-- ARGV[3..] = ids of tasks that reached a final state. Returns the rows of the WAITING tasks
-- that depend on any of them, each once, and drops the sets B:deps:<id> that named them: a
-- final task is never waited on again (enqueue settles new dependents of a final task itself).
local out = {}
local seen = {}
for i = 3, #ARGV do
  local dk = P .. ':deps:' .. ARGV[i]
  for _, id in ipairs(redis.call('SMEMBERS', dk)) do
    if not seen[id] then
      seen[id] = true
      if redis.call('HGET', tkey(id), 'st') == 'waiting' then out[#out + 1] = row(id) end
    end
  end
  redis.call('DEL', dk)
end
return out
