-- Shared by the result-storage script and the task queue's completion script (which writes
-- results in the same step as the acknowledgements). R is the result key prefix with the
-- same hash tag as the task keys, e.g. "omniq:results:{project}".

local function write_result(R, id, payload, pxat, exp_us, sid)
  local rk = R .. ':result:' .. id
  redis.call('SET', rk, payload)
  if pxat ~= '' then
    -- native expiry; the index only lets cleanup() count what expired
    redis.call('PEXPIREAT', rk, pxat)
    redis.call('ZADD', R .. ':expiry', exp_us, id)
  else
    redis.call('ZREM', R .. ':expiry', id)
  end
  if sid ~= '' then redis.call('SET', R .. ':latest:' .. sid, id) end
end

-- one message for the whole batch wakes every waiter of these ids: records of a 4-byte length
-- and the id, a 4-byte length and the payload (empty when over 4 KiB: the waiter then reads
-- it). Expiry entries older than an hour are dropped here, so the index stays bounded when
-- nobody calls cleanup().
local function notify(R, ids, payloads, now)
  local parts = {}
  for i, id in ipairs(ids) do
    local p = payloads[i]
    if #p > 4096 then p = '' end
    parts[i] = struct.pack('>I4', #id) .. id .. struct.pack('>I4', #p) .. p
  end
  redis.call('PUBLISH', R .. ':done', table.concat(parts))
  redis.call('ZREMRANGEBYSCORE', R .. ':expiry', '-inf', string.format('(%d', now - 3600000000))
end
