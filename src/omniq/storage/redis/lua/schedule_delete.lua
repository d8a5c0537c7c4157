-- ARGV[3] = schedule id. Returns 1 when it existed.
local id = ARGV[3]
redis.call('ZREM', P .. ':scheds', id)
redis.call('ZREM', P .. ':sched_due', id)
return redis.call('DEL', P .. ':sched:' .. id)
