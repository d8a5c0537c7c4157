-- One piece of a batch too large for one enqueue call, kept out of sight until the batch is
-- committed by enqueue.lua (see _enqueue.py). ARGV[3] = the batch's token, ARGV[4] = the
-- piece's number (0, 1, ...), ARGV[5] = milliseconds the staged pieces live without a commit
-- (a producer that died mid-batch leaves nothing behind for longer), ARGV[6] = the tasks'
-- fields, ARGV[7..] = their payloads, as enqueue.lua takes them.
-- A piece sent again (a retried call) replaces itself. Every staged piece of the batch gets
-- its time to live again, so a long batch does not lose its first pieces while it stages.
-- Returns the number of elements of this piece's list.
local base = P .. ':stage:' .. ARGV[3] .. ':'
local piece = tonumber(ARGV[4])
local ttl = ARGV[5]
local k = base .. piece
redis.call('DEL', k)
local n = redis.call('RPUSH', k, unpack(ARGV, 6))
for i = 0, piece do redis.call('PEXPIRE', base .. i, ttl) end
return n
