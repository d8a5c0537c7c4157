-- ARGV[3] = n, then 11 values per task: id, payload, queue, priority, eta, expires_at,
-- created_at, func, schedule_id, result_ttl, max_attempts ('' = None).
-- Returns 1 per stored task, 0 per id that already existed (left untouched).
local n = tonumber(ARGV[3])
local out = {}
local woken = {}
local b = 3
for i = 1, n do
  local id, payload, q, pr, eta, exp, ca, f, sid, rt, mx = unpack(ARGV, b + 1, b + 11)
  b = b + 11
  local tk = tkey(id)
  if redis.call('EXISTS', tk) == 1 then
    out[i] = 0
  else
    local seq = redis.call('INCR', P .. ':seq')
    local fields = {'p', payload, 'q', q, 'pr', pr, 'sq', seq, 'st', 'pending', 'att', 0,
                    'ca', ca, 'f', f, 'mx', mx}
    if eta ~= '' then
      fields[#fields + 1] = 'eta'
      fields[#fields + 1] = eta
    else
      eta = false
    end
    if exp ~= '' then
      fields[#fields + 1] = 'exp'
      fields[#fields + 1] = exp
      redis.call('ZADD', P .. ':expiry', exp, id)
    end
    if sid ~= '' then
      fields[#fields + 1] = 'sid'
      fields[#fields + 1] = sid
    end
    if rt ~= '' then
      fields[#fields + 1] = 'rt'
      fields[#fields + 1] = rt
    end
    redis.call('HSET', tk, unpack(fields))
    redis.call('ZADD', P .. ':all', seq, id)
    redis.call('ZADD', idx(q, 'pending'), seq, id)
    redis.call('SADD', P .. ':queues', q)
    -- "now" is the creation time, as in the memory backend: an eta before it is ready at once
    push(id, tonumber(ca), q, pr, seq, eta, ca)
    woken[q] = (woken[q] or 0) + 1
    out[i] = 1
  end
end
for q, count in pairs(woken) do wake(q, count) end
return out
