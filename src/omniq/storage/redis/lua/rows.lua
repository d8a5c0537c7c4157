-- ARGV[3..] = task ids. Returns the rows of those that exist.
local out = {}
for i = 3, #ARGV do
  if redis.call('EXISTS', tkey(ARGV[i])) == 1 then out[#out + 1] = row(ARGV[i]) end
end
return out
