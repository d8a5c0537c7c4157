-- ARGV[3] = n, then per task 12 values: id, payload, queue, priority, eta, expires_at,
-- created_at, func, schedule_id, result_ttl, max_attempts ('' = None), the number of its
-- dependencies; then the ids of those dependencies. A task with dependencies is stored WAITING:
-- in no ready or delayed set, woken for by nobody, and listed in the set B:deps:<dep> of each
-- dependency that has not finished yet (a finished one is settled by the caller at once, and
-- nothing will ever read its set again).
-- Returns 1 per stored task, 0 per id that already existed (left untouched).
local n = tonumber(ARGV[3])
local out = {}
local woken = {}
local b = 3
for i = 1, n do
  local id, payload, q, pr, eta, exp, ca, f, sid, rt, mx, nd = unpack(ARGV, b + 1, b + 12)
  local first_dep = b + 13
  nd = tonumber(nd)
  b = b + 12 + nd
  local st = nd > 0 and 'waiting' or 'pending'
  local tk = tkey(id)
  if redis.call('EXISTS', tk) == 1 then
    out[i] = 0
  else
    local seq = redis.call('INCR', P .. ':seq')
    local fields = {'p', payload, 'q', q, 'pr', pr, 'sq', seq, 'st', st, 'att', 0,
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
    redis.call('ZADD', idx(q, st), seq, id)
    redis.call('SADD', P .. ':queues', q)
    if nd > 0 then
      for j = first_dep, first_dep + nd - 1 do
        local dep = ARGV[j]
        if not FINAL[redis.call('HGET', tkey(dep), 'st')] then
          redis.call('SADD', P .. ':deps:' .. dep, id)
        end
      end
    else
      -- "now" is the creation time, as in the memory backend: an eta before it is ready at once
      push(id, tonumber(ca), q, pr, seq, eta, ca)
      woken[q] = (woken[q] or 0) + 1
    end
    out[i] = 1
  end
end
for q, count in pairs(woken) do wake(q, count) end
return out
