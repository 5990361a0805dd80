package redisstore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/varcodec"
)

// The Lua scripts. Each runs on one inbox: KEYS[1] is always the inbox's
// meta key "<base>h", so a script derives every other key of the inbox
// from it (base = KEYS[1] without its last letter). Keys found at run time
// (a dropped message's thread, the threads listed in "th") are not in KEYS;
// they carry the same hash tag, and Redis Cluster allows a script every key
// of the slot its declared keys are in.
//
// Numbers that can pass 2^53 (ids, cursors, marks) stay decimal strings in
// Lua, whose numbers are doubles, and are compared with gt. Seqs are Lua
// numbers: an inbox does not reach 2^53 messages.

// luaPrelude is shared by the scripts. The upper-case names are replaced
// by constants of package inbox and this package when the scripts are built.
const luaPrelude = `
-- base is the inbox the functions below work on (submitScript moves it).
local base = string.sub(KEYS[1], 1, -2)

-- gt reports whether decimal a > decimal b (both canonical, unsigned).
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end

-- uvarint encodes n (an integer below 2^53) like Go's binary.AppendUvarint.
local function uvarint(n)
  local t = {}
  while n >= 128 do
    t[#t + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  t[#t + 1] = string.char(n)
  return table.concat(t)
end

-- readuv decodes the uvarint of s at pos: its value and the next pos, or
-- nil when s is cut short.
local function readuv(s, pos)
  local n, mul = 0, 1
  for i = pos, pos + 9 do
    local c = string.byte(s, i)
    if c == nil then return nil end
    if c < 128 then return n + c * mul, i + 1 end
    n = n + (c - 128) * mul
    mul = mul * 128
  end
  return nil
end

-- threadof mirrors inbox.Message.Thread on an encoded message (codec.go):
-- version, seq, kind, peer. nil when the encoding is not understood.
local function threadof(m)
  if string.byte(m, 1) ~= CODEC_V1 then return nil end
  local _, pos = readuv(m, 2)
  if pos == nil then return nil end
  local kind = string.byte(m, pos)
  if kind == KIND_NOTICE then return NOTICE_THREAD end
  if kind ~= KIND_DIRECT and kind ~= KIND_SENT then return '' end
  local n, p = readuv(m, pos + 1)
  if n == nil then return nil end
  return string.sub(m, p, p + n - 1)
end

-- unindex removes message s (a decimal seq), encoded as m, from the time
-- index and its thread's indexes, and keeps "th" at the thread's newest
-- held seq, dropping the thread when it empties. The caller removes the
-- message itself.
local function unindex(s, m)
  redis.call('ZREM', base .. 'tm', s)
  local th = threadof(m)
  if th == nil or th == '' then return end
  local tk = base .. 't:' .. th
  redis.call('ZREMRANGEBYSCORE', tk, s, s)
  redis.call('ZREMRANGEBYSCORE', base .. 'u:' .. th, s, s)
  local newest = redis.call('ZREVRANGE', tk, 0, 0, 'WITHSCORES')
  if newest[2] then
    redis.call('ZADD', base .. 'th', newest[2], th)
  else
    redis.call('ZREM', base .. 'th', th)
  end
end

-- append_entries appends n entries to the inbox at base. Entry i has
-- body (codec.go), thread ("" for none), unread suffix ("" when not
-- incoming, else ":" and for notices the msgtype) and push due time (Unix
-- ms, "" for none) at ARGV[at + 4i] to ARGV[at + 4i + 3]. A due time puts
-- "seq:uid" on the push schedule pushes. It assigns the Seqs, stores and
-- indexes the entries, trims overflow beyond max (0: none), records id as
-- the last id and returns the first Seq and how many messages it dropped.
local function append_entries(id, now, max, n, at, pushes, uid)
  local first
  for i = 0, n - 1 do
    local p = at + 4 * i
    local body, th, un, due = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
    local seq = redis.call('HINCRBY', base .. 'h', 's', 1)
    first = first or seq
    local s = string.format('%d', seq)
    redis.call('ZADD', base .. 'm', s, string.char(CODEC_V1) .. uvarint(seq) .. body)
    redis.call('ZADD', base .. 'tm', now, s)
    if th ~= '' then
      redis.call('ZADD', base .. 't:' .. th, s, s)
      if un ~= '' then redis.call('ZADD', base .. 'u:' .. th, s, s .. un) end
      redis.call('ZADD', base .. 'th', s, th)
    end
    if due ~= '' then redis.call('ZADD', pushes, due, s .. ':' .. uid) end
  end
  local dropped = 0
  if max > 0 then
    local over = redis.call('ZCARD', base .. 'm') - max
    if over > 0 then
      local old = redis.call('ZRANGE', base .. 'm', 0, over - 1, 'WITHSCORES')
      for j = 1, #old, 2 do unindex(old[j + 1], old[j]) end
      redis.call('ZREMRANGEBYRANK', base .. 'm', 0, over - 1)
      dropped = over
    end
  end
  redis.call('HSET', base .. 'h', 'i', id)
  return first, dropped
end

-- find_request returns the record of key in the request records dd if it
-- is younger than cut (Unix ms) and has sum, else nil. A record is
-- "sum time id seq,seq...".
local function find_request(dd, key, sum, cut)
  if key == '' then return nil end
  local rec = redis.call('HGET', dd, key)
  if not rec then return nil end
  local s, t = string.match(rec, '^(%S+) (%d+) ')
  if s == sum and tonumber(t) > cut then return rec end
  return nil
end

-- record_request stores rec for key in dd, its age in ddt, drops the
-- records older than cut and those over cap (the oldest first), and lets
-- both keys expire after window ms without a new record.
local function record_request(dd, ddt, key, rec, now, cut, cap, window)
  redis.call('HSET', dd, key, rec)
  redis.call('ZADD', ddt, now, key)
  local old = redis.call('ZRANGEBYSCORE', ddt, '-inf', cut)
  local over = redis.call('ZCARD', ddt) - #old - cap
  if over > 0 then
    local more = redis.call('ZRANGE', ddt, #old, #old + over - 1)
    for _, k in ipairs(more) do old[#old + 1] = k end
  end
  for i = 1, #old, 1000 do -- unpack is limited by Lua's stack
    local j = math.min(i + 999, #old)
    redis.call('HDEL', dd, unpack(old, i, j))
    redis.call('ZREM', ddt, unpack(old, i, j))
  end
  redis.call('PEXPIRE', dd, window)
  redis.call('PEXPIRE', ddt, window)
end
`

// lockScript takes the append lock of an inbox for token, or finds it
// taken already by token (a retried call). KEYS: h, lk, dd (the request
// records). ARGV: token, ttl in ms, request key ("" for none), its sum,
// the oldest record time still in the window (ms). Returns {1, last id or
// "", highest Seq, the request's record or ""} or, when another token
// holds the lock, {0, its remaining ms}.
const lockScript = `
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[2])}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'i', 's')
return {1, h[1] or '', h[2] or '0', find_request(KEYS[3], ARGV[3], ARGV[4], tonumber(ARGV[5])) or ''}
`

// unlockScript releases the append lock if token holds it. KEYS: lk.
// ARGV: token.
const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
`

// appendScript appends to one inbox under the lock token holds (the
// Cluster protocol, see doc.go). KEYS: h, lk, m, tm, th, dd, ddt. ARGV:
// token, id, time (ms), MaxPerInbox (0: none), n, request key ("" for
// none), its record, the oldest record time kept (ms), records kept at
// most, window (ms), then per entry the four values of append_entries
// (push due always "": the schedule is in another slot). It releases the
// lock and returns {first seq, messages dropped}.
//
// It also records its result under "a", so that a call retried after a
// lost reply (the lock is gone by then) returns the same result instead of
// failing or appending twice.
const appendScript = `
local token, id, now, max, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('GET', KEYS[2]) ~= token then
  local done = redis.call('HGET', KEYS[1], 'a')
  if done then
    local t, first, dropped = string.match(done, '^(%S+) (%d+) (%d+)$')
    if t == token then return {tonumber(first), tonumber(dropped)} end
  end
  return redis.error_reply('INBOXLOCK append lock lost (held longer than its ttl)')
end
local last = redis.call('HGET', KEYS[1], 'i')
if last and not gt(id, last) then
  return redis.error_reply('INBOXID id ' .. id .. ' not above the last id ' .. last)
end
local first, dropped = append_entries(id, now, max, n, 11, nil, nil)
if ARGV[6] ~= '' then
  record_request(KEYS[6], KEYS[7], ARGV[6], ARGV[7], now, tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10])
end
redis.call('HSET', KEYS[1], 'a', token .. ' ' .. string.format('%d %d', first, dropped))
redis.call('DEL', KEYS[2])
return {first, dropped}
`

// submitScript appends a whole request in one atomic step, on a Redis
// that is not a Cluster (see doc.go). KEYS: per inbox h, lk, m, tm, th;
// then the sweep index, the push schedule, and dd, ddt of the first
// inbox. ARGV: token, id, time (ms), MaxPerInbox, inboxes, request key
// ("" for none), its sum, the oldest record time kept (ms), records kept
// at most, window (ms); then per inbox its uid and n, and per entry the
// four values of append_entries. Returns:
//
//	{"ok", first seq, dropped, ...per inbox}  appended (or appended before by token)
//	{"dup", record}                           the request is stored already
//	{"busy", ms}                              an appender of the lock protocol holds an inbox
//	{"floor", last id}                        id is not above an inbox's last id
const submitScript = `
local token, id, now, max, ni = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key, sum, cut, cap, window = ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local nk = 5 * ni
local function recorded()
  local out = {'ok'}
  for i = 0, ni - 1 do
    local done = redis.call('HGET', KEYS[5 * i + 1], 'a')
    local t, first, dropped = string.match(done or '', '^(%S+) (%d+) (%d+)$')
    if t ~= token then return nil end
    out[#out + 1], out[#out + 2] = tonumber(first), tonumber(dropped)
  end
  return out
end
local again = recorded()
if again then return again end
local rec = find_request(KEYS[nk + 3], key, sum, cut)
if rec then return {'dup', rec} end
local floor = ''
for i = 0, ni - 1 do
  local held = redis.call('PTTL', KEYS[5 * i + 2])
  if held > 0 then return {'busy', held} end
  local last = redis.call('HGET', KEYS[5 * i + 1], 'i')
  if last and not gt(id, last) and gt(last, floor) then floor = last end
end
if floor ~= '' then return {'floor', floor} end
local out, seqs = {'ok'}, {}
local at = 11
for i = 0, ni - 1 do
  base = string.sub(KEYS[5 * i + 1], 1, -2)
  local uid, n = ARGV[at], tonumber(ARGV[at + 1])
  local first, dropped = append_entries(id, now, max, n, at + 2, KEYS[nk + 2], uid)
  at = at + 2 + 4 * n
  redis.call('HSET', KEYS[5 * i + 1], 'a', token .. ' ' .. string.format('%d %d', first, dropped))
  redis.call('ZADD', KEYS[nk + 1], 'LT', now, uid)
  out[#out + 1], out[#out + 2] = first, dropped
  for s = first, first + n - 1 do seqs[#seqs + 1] = string.format('%d', s) end
end
if key ~= '' then
  record_request(KEYS[nk + 3], KEYS[nk + 4], key, sum .. ' ' .. now .. ' ' .. id .. ' ' .. table.concat(seqs, ','), now, cut, cap, window)
end
return out
`

// boundsScript reads an inbox's held range. KEYS: h, m. Returns {last,
// first}, "0" for none.
const boundsScript = `
local f = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {redis.call('HGET', KEYS[1], 's') or '0', f[2] or '0'}
`

// raiseScript moves a field of a hash forward, never back; an absent field
// is set to any value. KEYS: the hash. ARGV: field, decimal value.
const raiseScript = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and not gt(ARGV[2], cur) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`

// expireScript drops up to limit messages of an inbox appended before
// cut. KEYS: h, m, tm, th, lk. ARGV: cut (ms), limit. Returns {dropped,
// 1 if there may be more, the oldest remaining time or "", 1 if the
// append lock is held}.
const expireScript = `
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
local n = 0
for _, s in ipairs(due) do
  local m = redis.call('ZRANGEBYSCORE', KEYS[2], s, s)[1]
  if m then
    unindex(s, m)
    redis.call('ZREMRANGEBYSCORE', KEYS[2], s, s)
    n = n + 1
  else
    redis.call('ZREM', KEYS[3], s)
  end
end
local more = 0
if #due == tonumber(ARGV[2]) then more = 1 end
local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2] or ''
return {n, more, oldest, redis.call('EXISTS', KEYS[5])}
`

// probeScript tells the sweep whether an inbox may need its index entry
// back. KEYS: h, tm, lk. Returns {oldest time or "", 1 if locked}.
const probeScript = `
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2] or ''
return {oldest, redis.call('EXISTS', KEYS[3])}
`

// deleteScript removes one message and its index entries. KEYS: h, m.
// ARGV: seq. Returns 1 if it was held.
const deleteScript = `
local m = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[1])[1]
if not m then return 0 end
unindex(ARGV[1], m)
redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[1])
return 1
`

// threadScript reads a thread newest first. KEYS: h, m, the thread's
// "t:" key. ARGV: highest score ("+inf" or "(before"), limit. Returns the
// encoded messages.
const threadScript = `
local seqs = redis.call('ZREVRANGEBYSCORE', KEYS[3], ARGV[1], '-inf', 'LIMIT', 0, ARGV[2])
local out = {}
for _, s in ipairs(seqs) do
  local m = redis.call('ZRANGEBYSCORE', KEYS[2], s, s)[1]
  if m then out[#out + 1] = m end
end
return out
`

// threadsScript lists an inbox's threads newest first. KEYS: h, m, th, r.
// Returns a flat list of thread, newest encoded message, read mark, unread.
const threadsScript = `
local marks = {}
local flat = redis.call('HGETALL', KEYS[4])
for i = 1, #flat, 2 do marks[flat[i]] = flat[i + 1] end
local ths = redis.call('ZREVRANGE', KEYS[3], 0, -1, 'WITHSCORES')
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
local marks = {}
local flat = redis.call('HGETALL', KEYS[3])
for i = 1, #flat, 2 do marks[flat[i]] = flat[i + 1] end
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

// Scripts, built once. go-redis runs them with EVALSHA and falls back to
// EVAL when Redis does not know them (after a restart or SCRIPT FLUSH).
var (
	scriptLock    = build("lock", lockScript)
	scriptUnlock  = build("unlock", unlockScript)
	scriptAppend  = build("append", appendScript)
	scriptSubmit  = build("submit", submitScript)
	scriptBounds  = build("bounds", boundsScript)
	scriptRaise   = build("raise", raiseScript)
	scriptExpire  = build("expire", expireScript)
	scriptProbe   = build("probe", probeScript)
	scriptDelete  = build("delete", deleteScript)
	scriptThread  = build("thread", threadScript)
	scriptThreads = build("threads", threadsScript)
	scriptUnread  = build("unread", unreadScript)
)

// build prefixes a script with the prelude and fills in the constants,
// so the Lua side cannot drift from the Go side. name is a comment: it
// shows in SCRIPT errors and in the slow log.
func build(name, body string) *redis.Script {
	if strings.ContainsAny(inbox.NoticeThread, `'\`+"\n") {
		panic(fmt.Sprintf("redisstore: NoticeThread %q cannot be a Lua literal", inbox.NoticeThread))
	}
	src := strings.NewReplacer(
		"CODEC_V1", strconv.Itoa(varcodec.Version1),
		"KIND_DIRECT", strconv.Itoa(int(inbox.KindDirect)),
		"KIND_SENT", strconv.Itoa(int(inbox.KindSent)),
		"KIND_NOTICE", strconv.Itoa(int(inbox.KindNotice)),
		"NOTICE_THREAD", "'"+inbox.NoticeThread+"'",
	).Replace(luaPrelude + body)
	return redis.NewScript("-- inboxmq " + name + "\n" + src)
}
