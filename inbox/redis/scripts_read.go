package redisstore

// The scripts of the read side: an inbox's bounds, a thread, the list of
// threads and the unread counts. Like the others (scripts.go) they start
// with luaPrelude; Threads and Unread write th's pending entries first
// (flush_stored), since th is written behind.

// boundsScript reads an inbox's held range. KEYS: h, m. Returns {last,
// first}, "0" for none.
const boundsScript = `
local f = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {redis.call('HGET', KEYS[1], 's') or '0', f[2] or '0'}
`

// threadScript reads a thread newest first, merging its two indexes (see
// unindex; in older inboxes a Seq may be in both). KEYS: h, m, the
// thread's "t:" and "u:" keys. ARGV: highest score ("+inf" or "(before"),
// limit. Returns the encoded messages.
const threadScript = `
local limit = tonumber(ARGV[2])
local a = redis.call('ZREVRANGEBYSCORE', KEYS[3], ARGV[1], '-inf', 'WITHSCORES', 'LIMIT', 0, limit)
local b = redis.call('ZREVRANGEBYSCORE', KEYS[4], ARGV[1], '-inf', 'WITHSCORES', 'LIMIT', 0, limit)
local out, i, j, taken = {}, 2, 2, 0
while taken < limit do
  local sa, sb = tonumber(a[i]), tonumber(b[j])
  local s
  if sa and (not sb or sa >= sb) then
    s, i = a[i], i + 2
    if sb == sa then j = j + 2 end
  elseif sb then
    s, j = b[j], j + 2
  else
    break
  end
  taken = taken + 1
  local m = redis.call('ZRANGEBYSCORE', KEYS[2], s, s)[1]
  if m then out[#out + 1] = m end
end
return out
`

// threadsScript lists an inbox's threads newest first. KEYS: h, m, th, r.
// ARGV: the highest newest Seq to list ("+inf" or "(seq"), how many (-1:
// all). Returns a flat list of thread, newest encoded message, read mark,
// unread.
const threadsScript = `
flush_stored()
local marks = read_marks(KEYS[4])
local ths = redis.call('ZREVRANGEBYSCORE', KEYS[3], ARGV[1], '-inf', 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #ths, 2 do
  local th, s = ths[i], ths[i + 1]
  local m = redis.call('ZRANGEBYSCORE', KEYS[2], s, s)[1]
  if m then
    local mark = marks[th] or '0'
    out[#out + 1] = th
    out[#out + 1] = m
    out[#out + 1] = mark
    out[#out + 1] = redis.call('ZCOUNT', base .. 'u:' .. th, '(' .. mark, '+inf')
  end
end
return out
`

// unreadScript counts an inbox's unread messages. KEYS: h, th, r. Returns
// {{thread, count, ...}, {msgtype, count, ...}} with zero counts left out.
const unreadScript = `
flush_stored()
local marks = read_marks(KEYS[3])
local counts = {}
for _, th in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local n = redis.call('ZCOUNT', base .. 'u:' .. th, '(' .. (marks[th] or '0'), '+inf')
  if n > 0 then
    counts[#counts + 1] = th
    counts[#counts + 1] = n
  end
end
local byType, order = {}, {}
local mark = marks[NOTICE_THREAD] or '0'
for _, mem in ipairs(redis.call('ZRANGEBYSCORE', base .. 'u:' .. NOTICE_THREAD, '(' .. mark, '+inf')) do
  local t = string.match(mem, '^%d+:(.*)$') or ''
  if byType[t] == nil then
    byType[t] = 0
    order[#order + 1] = t
  end
  byType[t] = byType[t] + 1
end
local types = {}
for _, t in ipairs(order) do
  types[#types + 1] = t
  types[#types + 1] = byType[t]
end
return {counts, types}
`
