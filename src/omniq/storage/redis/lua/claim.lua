-- ARGV[3] = lease deadline, [4] = worker id ('' = None), [5] = limit, [6] = random token,
-- [7] = number of queues, then the queues in the order to serve them, then optionally the
-- token of a stop list. A lease deadline "+<us>" is that long after now.
-- Returns {next_due, claimed rows, ended rows}: next_due is the earliest delayed eta of these
-- queues when nothing was claimed (false otherwise), ended rows are tasks found EXPIRED, or
-- made DEAD because their record is corrupt.
--
-- A claim sent right behind a BLPOP on the wake lists (one round trip: the wake-up and the
-- claim) names the stop list that BLPOP also watched: the waiter's owner pushes two tokens
-- there to end the wait, and the claim, finding the one left, claims nothing and passes on the
-- wake-up BLPOP may have taken meanwhile to the next idle claimer.
local lease_until = ARGV[3]
if string.sub(lease_until, 1, 1) == '+' then
  lease_until = string.format('%.0f', NOW + tonumber(string.sub(lease_until, 2)))
end
local worker = ARGV[4]
local who = worker ~= '' and worker or 'anonymous'
local limit = tonumber(ARGV[5])
local token = ARGV[6]
local nq = tonumber(ARGV[7])
local claimed, ended = {}, {}
local n = 0

local stop_token = ARGV[8 + nq]
if stop_token then
  local sk = P .. ':wakestop:' .. stop_token
  if redis.call('LLEN', sk) > 0 then
    redis.call('DEL', sk)
    for i = 1, nq do
      if redis.call('EXISTS', P .. ':ready:' .. ARGV[7 + i]) == 1 then wake(ARGV[7 + i], 1) end
    end
    return {false, {}, {}}
  end
end

-- a pending task whose stored state is no state (written by something else): DEAD, with the
-- reason, instead of an error that would stop every claim of the queue
local KNOWN = {}
for _, st in ipairs(STATUSES) do KNOWN[st] = true end

local function corrupt(id, q, seq, what)
  redis.call('HSET', tkey(id), 'et', 'CorruptRecord', 'em',
             'the stored record is corrupt: ' .. what)
  finish(id, 'pending', 'dead', q, seq)
  ended[#ended + 1] = row(id)
end

local function promote(q)
  local dk = P .. ':delayed:' .. q
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', dk, '-inf', NOW_S, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', dk, id)
    if redis.call('HGET', tkey(id), 'st') == 'pending' then push(id, NOW) end
  end
end

for i = 1, nq do
  local q = ARGV[7 + i]
  promote(q)
  local rk = P .. ':ready:' .. q
  while n < limit do
    local popped = redis.call('ZPOPMIN', rk, limit - n)
    if #popped == 0 then break end
    for j = 1, #popped, 2 do
      local id = string.sub(popped[j], MEMBER_HEAD + 1)
      local tk = tkey(id)
      -- the task's fields as they are now (FIELDS, then the sequence), read once
      local v = redis.call('HMGET', tk, unpack(FIELDS_SQ))
      local att = tonumber(v[4])
      if v[2] and not KNOWN[v[2]] then
        -- it was queued as pending (it is in the ready set): its status was overwritten
        corrupt(id, q, v[22], 'status ' .. v[2] .. ' is not a task status')
      elseif v[2] == 'pending' and (not att or att % 1 ~= 0) then
        corrupt(id, q, v[22], 'attempts ' .. tostring(v[4]) .. ' is not an integer')
      elseif v[2] == 'pending' and v[3] and not tonumber(v[3]) then
        corrupt(id, q, v[22], 'expires_at ' .. v[3] .. ' is not a time')
      elseif v[2] == 'pending' then
        if v[3] and tonumber(v[3]) <= NOW then
          redis.call('HSET', tk, 'et', 'TaskExpired', 'em', 'expired before it started')
          finish(id, 'pending', 'expired', q, v[22])
          ended[#ended + 1] = row(id)
        else
          n = n + 1
          att = att + 1
          local claim = who .. ':' .. att .. ':' .. token .. n
          redis.call('ZREM', idx(q, 'pending'), id)
          redis.call('ZADD', idx(q, 'running'), v[22], id)
          if worker == '' then
            redis.call('HSET', tk, 'st', 'running', 'att', att, 'c', claim, 'sa', NOW_S,
                       'le', lease_until)
            if v[8] then redis.call('HDEL', tk, 'w') end
          else
            redis.call('HSET', tk, 'st', 'running', 'att', att, 'c', claim, 'sa', NOW_S,
                       'le', lease_until, 'w', worker)
          end
          if v[11] then redis.call('HDEL', tk, 'cr') end
          redis.call('ZADD', P .. ':leases', lease_until, id)
          -- the row after the change, built here rather than read back
          claimed[#claimed + 1] = {id, v[1], 'running', v[3], att, v[5], NOW_S, v[7],
                                   worker ~= '' and worker or false, claim, lease_until, false,
                                   v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19],
                                   v[20], v[21]}
        end
      end
    end
  end
  if n >= limit then
    -- this claimer is full: pass the wake-up on to the next idle claimer if work is left
    if redis.call('EXISTS', rk) == 1 then wake(q, 1) end
    break
  end
end

local next_due = false
if n == 0 then
  for i = 1, nq do
    local first = redis.call('ZRANGE', P .. ':delayed:' .. ARGV[7 + i], 0, 0, 'WITHSCORES')
    if first[2] and (not next_due or tonumber(first[2]) < tonumber(next_due)) then
      next_due = first[2]
    end
  end
end
if #ended > 0 then trim() end
return {next_due, claimed, ended}
