-- Stores a batch of tasks, all of it or (when a staged piece is missing) none of it.
-- ARGV[3] = the batch's staging token ('' = nothing staged), ARGV[4] = how many pieces
-- stage.lua staged under it (stored first, in order), ARGV[5] = the fields of the tasks of this
-- call, a msgpack array with one array of strings per task: id, queue, priority, eta,
-- expires_at, created_at, func, schedule_id, result_ttl, max_attempts ('' = None), then the
-- array of its dependencies' ids; ARGV[6..] = the tasks' payloads, in order.
-- A task with dependencies is stored WAITING: in no ready or delayed set, woken for by nobody,
-- and listed in the set B:deps:<dep> of each dependency that has not finished yet (a finished
-- one is settled by the caller at once, and nothing will ever read its set again).
-- Returns 1 per stored task, 0 per id that already existed (left untouched). A staged batch
-- whose pieces are not all there (expired, or lost in a failover) stores nothing and returns
-- 'gone'; one committed already (this call run again after a short WAIT) returns 'done'.
local out = {}
local woken = {}

local function store(tasks, payloads, first)
  for i, t in ipairs(tasks) do
    local id, q, pr, eta, exp, ca, f, sid, rt, mx, deps = unpack(t, 1, 11)
    local payload = payloads[first + i]
    local nd = #deps
    local st = nd > 0 and 'waiting' or 'pending'
    local tk = tkey(id)
    if redis.call('EXISTS', tk) == 1 then
      out[#out + 1] = 0
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
        for _, dep in ipairs(deps) do
          if not FINAL[redis.call('HGET', tkey(dep), 'st')] then
            redis.call('SADD', P .. ':deps:' .. dep, id)
          end
        end
      else
        -- "now" is the creation time, as in the memory backend: an eta before it is ready at once
        push(id, tonumber(ca), q, pr, seq, eta, ca)
        woken[q] = (woken[q] or 0) + 1
      end
      out[#out + 1] = 1
    end
  end
end

local token = ARGV[3]
if token ~= '' then
  local base = P .. ':stage:' .. token
  if redis.call('GET', base) == 'done' then return 'done' end
  local pieces = tonumber(ARGV[4])
  for i = 0, pieces - 1 do
    if redis.call('EXISTS', base .. ':' .. i) == 0 then return 'gone' end
  end
  for i = 0, pieces - 1 do
    local staged = redis.call('LRANGE', base .. ':' .. i, 0, -1)
    store(cmsgpack.unpack(staged[1]), staged, 1)
    redis.call('DEL', base .. ':' .. i)
  end
  -- what a run of this call again finds (see Script: a WAIT that fell short runs it again)
  redis.call('SET', base, 'done', 'PX', 120000)
end
store(cmsgpack.unpack(ARGV[5]), ARGV, 5)
for q, count in pairs(woken) do wake(q, count) end
return out
