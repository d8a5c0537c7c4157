-- Shared helpers of the task-queue scripts; prepended to each script by the loader.
--
-- KEYS[1] is the key prefix with its hash tag, e.g. "omniq:tasks:{project}". Every key a script
-- touches starts with it, so all of them hash to one Cluster slot. ARGV[1] is "now" in
-- microseconds since the epoch, ARGV[2] how many finished tasks to keep. Every time is an
-- integer number of microseconds, stored as a decimal string; an absent hash field is None.
-- "~<offset>" in place of "now" reads the server's clock as the script runs and moves it onto
-- the caller's clock by that offset (a claim sent behind a blocking wait runs later than sent).
-- tasks_begin() reads them at the start of every call: the loader calls it before the script's
-- own text, so the helpers below are defined once per Redis function library (see _scripts.py).
local P, NOW_S, NOW, MAX_FINISHED
local function tasks_begin()
  P = KEYS[1]
  NOW_S = ARGV[1]
  if string.sub(NOW_S, 1, 1) == '~' then
    local t = redis.call('TIME')
    NOW_S = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2])
                                  + tonumber(string.sub(NOW_S, 2)))
  end
  NOW = tonumber(NOW_S)
  MAX_FINISHED = tonumber(ARGV[2])
end

-- what a caller gets back for one task: its id, payload, state fields and the fields needed
-- to rebuild a view of a task whose payload cannot be decoded (see _rows.py), then its
-- progress ('pg', which the claim leaves out: it reads FIELDS_SQ)
local FIELDS = {'p', 'st', 'exp', 'att', 'eta', 'sa', 'fa', 'w', 'c', 'le', 'cr', 'et', 'em',
                'etb', 'f', 'q', 'pr', 'sid', 'ca', 'rt', 'mx', 'pg'}
local FIELDS_SQ = {'p', 'st', 'exp', 'att', 'eta', 'sa', 'fa', 'w', 'c', 'le', 'cr', 'et', 'em',
                   'etb', 'f', 'q', 'pr', 'sid', 'ca', 'rt', 'mx', 'sq'}
local STATUSES = {'pending', 'waiting', 'running', 'success', 'failed', 'dead', 'cancelled',
                  'expired'}
local FINAL = {success = true, dead = true, cancelled = true, expired = true}
local WAKE_CAP = 16
-- ready-set members sort by priority desc, ready time, enqueue sequence: three fixed-width
-- decimal numbers, each exact in a double (priorities within +-2^52, times 1843..2128)
local PRIO_OFF = 4503599627370496
local READY_OFF = 4000000000000000
local MEMBER_HEAD = 48

local function tkey(id) return P .. ':task:' .. id end
local function idx(q, st) return P .. ':idx:' .. q .. ':' .. st end

local function row(id)
  local r = redis.call('HMGET', tkey(id), unpack(FIELDS))
  table.insert(r, 1, id)
  return r
end

-- '' clears a field (None); '=value' sets it, so an empty string stays an empty string
local function opt(key, field, arg)
  if arg == '' then
    redis.call('HDEL', key, field)
  else
    redis.call('HSET', key, field, string.sub(arg, 2))
  end
end

-- wake-up tokens for claimers blocked in BLPOP on this queue; the list stays short
local function wake(q, n)
  local k = P .. ':wake:' .. q
  if n > WAKE_CAP then n = WAKE_CAP end
  local tokens = {}
  for i = 1, n do tokens[i] = '1' end
  if redis.call('LPUSH', k, unpack(tokens)) > WAKE_CAP then
    redis.call('LTRIM', k, 0, WAKE_CAP - 1)
  end
end

-- the ready-set member of a task; derived from fields that do not change while it is queued,
-- so it is computed again rather than stored
local function ready_member(pr, ready, seq, id)
  return string.format('%016d%016d%016d', PRIO_OFF - tonumber(pr), tonumber(ready) + READY_OFF,
                       tonumber(seq)) .. id
end

-- a PENDING task into its queue: the delayed set until its eta, else the ready set. The
-- task's queue, priority, sequence, eta and creation time may be given when already known.
local function push(id, now, q, pr, seq, eta, ca)
  if not q then
    local v = redis.call('HMGET', tkey(id), 'q', 'pr', 'sq', 'eta', 'ca')
    q, pr, seq, eta, ca = v[1], v[2], v[3], v[4], v[5]
  end
  if eta and tonumber(eta) > now then
    redis.call('ZADD', P .. ':delayed:' .. q, eta, id)
  else
    redis.call('ZADD', P .. ':ready:' .. q, 0, ready_member(pr, eta or ca, seq, id))
  end
  return q
end

-- takes a PENDING task out of its ready or delayed set
local function unqueue(id, q)
  local v = redis.call('HMGET', tkey(id), 'pr', 'sq', 'eta', 'ca')
  redis.call('ZREM', P .. ':ready:' .. q, ready_member(v[1], v[3] or v[4], v[2], id))
  redis.call('ZREM', P .. ':delayed:' .. q, id)
end

-- the (queue, status) index sets, scored by enqueue sequence, follow every status change
local function set_status(id, q, seq, from, to)
  redis.call('ZREM', idx(q, from), id)
  redis.call('ZADD', idx(q, to), seq, id)
  redis.call('HSET', tkey(id), 'st', to)
end

local function finish(id, from, to, q, seq)
  local tk = tkey(id)
  if not q then
    local v = redis.call('HMGET', tk, 'q', 'sq')
    q, seq = v[1], v[2]
  end
  redis.call('ZREM', idx(q, from), id)
  redis.call('ZADD', idx(q, to), seq, id)
  -- the lease field stays behind: it means nothing once the task is not running
  redis.call('HSET', tk, 'st', to, 'fa', NOW_S)
  redis.call('ZREM', P .. ':leases', id)
  redis.call('ZADD', P .. ':finished', NOW_S, id)
end

local function forget(id)
  local tk = tkey(id)
  local v = redis.call('HMGET', tk, 'q', 'st')
  if not v[1] then return 0 end
  redis.call('ZREM', idx(v[1], v[2]), id)
  redis.call('ZREM', P .. ':all', id)
  if v[2] == 'pending' then unqueue(id, v[1]) end
  redis.call('ZREM', P .. ':leases', id)
  redis.call('ZREM', P .. ':finished', id)
  -- whoever still waits on a task that is gone learns it from the sweep (a missing dependency)
  redis.call('DEL', tk, P .. ':deps:' .. id)
  return 1
end

-- keeps at most MAX_FINISHED finished tasks, forgetting the oldest (a bounded step per call)
local function trim()
  local fk = P .. ':finished'
  local extra = redis.call('ZCARD', fk) - MAX_FINISHED
  if extra <= 0 then return end
  if extra > 1000 then extra = 1000 end
  for _, id in ipairs(redis.call('ZRANGE', fk, 0, extra - 1)) do
    local st = redis.call('HGET', tkey(id), 'st')
    if st and FINAL[st] then forget(id) else redis.call('ZREM', fk, id) end
  end
end
