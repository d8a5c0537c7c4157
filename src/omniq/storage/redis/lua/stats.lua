-- Counts by queue and status: {queue, count per STATUSES entry, queue, ...}.
local out = {}
for _, q in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
  out[#out + 1] = q
  for _, st in ipairs(STATUSES) do out[#out + 1] = redis.call('ZCARD', idx(q, st)) end
end
return out
