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

-- timeof returns the append time (Unix ms) of an encoded message, which
-- follows the version, seq, kind, peer and id (codec.go); nil when the
-- encoding is not understood.
local function timeof(m)
  if string.byte(m, 1) ~= CODEC_V1 then return nil end
  local _, pos = readuv(m, 2)
  if pos == nil then return nil end
  local n, p = readuv(m, pos + 1)
  if n == nil then return nil end
  local _, q = readuv(m, p + n)
  if q == nil then return nil end
  local z = readuv(m, q)
  if z == nil then return nil end
  if z % 2 == 1 then return -(z + 1) / 2 end
  return z / 2
end

-- unindex removes message s (a decimal seq), encoded as m, from its
-- thread's indexes and keeps "th" at the thread's newest held seq,
-- dropping the thread when it empties. The caller removes the message
-- itself (and lowers h's count, uncount). A thread's Seqs are in two
-- indexes: u: holds the incoming ones, t: the others (and, in inboxes
-- written before the two were split, the incoming ones too).
local function unindex(s, m)
  local th = threadof(m)
  if th == nil or th == '' then return end
  local tk, uk = base .. 't:' .. th, base .. 'u:' .. th
  redis.call('ZREMRANGEBYSCORE', tk, s, s)
  redis.call('ZREMRANGEBYSCORE', uk, s, s)
  local newest = redis.call('ZREVRANGE', tk, 0, 0, 'WITHSCORES')[2]
  local incoming = redis.call('ZREVRANGE', uk, 0, 0, 'WITHSCORES')[2]
  if incoming and (not newest or tonumber(incoming) > tonumber(newest)) then newest = incoming end
  if newest then
    redis.call('ZADD', base .. 'th', newest, th)
  else
    redis.call('ZREM', base .. 'th', th)
  end
end

-- uncount lowers h's count of held messages by k, when h keeps one.
local function uncount(k)
  local held = redis.call('HGET', base .. 'h', 'n')
  if held then redis.call('HSET', base .. 'h', 'n', string.format('%d', math.max(0, tonumber(held) - k))) end
end

-- th is written behind: an append adds (thread, seq) to pend, which the
-- inbox keeps in h's field P (written by the HSET of h the append does
-- anyway), and only once P passes PENDING_MAX bytes are its entries
-- written to th, in one ZADD. Whatever reads or rewrites th flushes P
-- first (flush_stored). An entry is the thread's length (uvarint), the
-- thread, and the Seq (uvarint).
local function pend_add(pend, th, seq)
  return pend .. uvarint(#th) .. th .. uvarint(seq)
end

-- flush_pending writes pend's entries to th and returns the empty pend.
-- ZADD GT: a pending Seq is newer than th's for its thread; an entry is
-- never lowered by it.
local function flush_pending(pend)
  if pend == nil or pend == '' then return '' end
  local args, pos = {'GT'}, 1
  while pos <= #pend do
    local n, p = readuv(pend, pos)
    if n == nil then break end
    local seq, q = readuv(pend, p + n)
    if seq == nil then break end
    args[#args + 1] = string.format('%d', seq)
    args[#args + 1] = string.sub(pend, p, p + n - 1)
    pos = q
  end
  if #args > 1 then redis.call('ZADD', base .. 'th', unpack(args)) end
  return ''
end

-- flush_stored flushes the pending entries h keeps, for a script that
-- reads th or calls unindex.
local function flush_stored()
  local pend = redis.call('HGET', base .. 'h', 'P')
  if pend and pend ~= '' then
    flush_pending(pend)
    redis.call('HDEL', base .. 'h', 'P')
  end
end

-- read_marks returns the read marks the hash at key keeps, by thread.
local function read_marks(key)
  local marks = {}
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do marks[flat[i]] = flat[i + 1] end
  return marks
end

-- append_entries appends n entries to the inbox at base, whose highest
-- Seq is s and which holds held messages (nil when h keeps no count yet:
-- then the log is counted), and whose pending th entries are pend (h's
-- P, "" for none). Entry i has body (codec.go), thread ("" for
-- none), unread suffix ("" when not incoming, else ":" and for notices
-- the msgtype) and push due time (Unix ms, "" for none) at ARGV[at + 4i]
-- to ARGV[at + 4i + 3]; a due time adds (due, "seq:uid") to the list
-- pushes. It stores and indexes the entries under Seqs s+1 to s+n, trims
-- overflow beyond max (0: none), and returns how many messages it dropped,
-- how many the inbox held before and holds now, and the pending th
-- entries. The caller writes h (P included).
local function append_entries(s, held, max, n, at, pushes, uid, pend)
  for i = 0, n - 1 do
    local p = at + 4 * i
    local body, th, un, due = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
    local seq = s + 1 + i
    local ss = string.format('%d', seq)
    redis.call('ZADD', base .. 'm', ss, string.char(CODEC_V1) .. uvarint(seq) .. body)
    if th ~= '' then
      if un ~= '' then
        redis.call('ZADD', base .. 'u:' .. th, ss, ss .. un)
      else
        redis.call('ZADD', base .. 't:' .. th, ss, ss)
      end
      pend = pend_add(pend, th, seq)
    end
    if due ~= '' then
      pushes[#pushes + 1] = due
      pushes[#pushes + 1] = ss .. ':' .. uid
    end
  end
  local before
  if held then
    before, held = held, held + n
  else
    held = redis.call('ZCARD', base .. 'm')
    before = held - n
  end
  local dropped = 0
  if max > 0 and held > max then
    held = redis.call('ZCARD', base .. 'm') -- a drop is decided on the log itself
    local over = held - max
    if over > 0 then
      pend = flush_pending(pend) -- unindex reads and rewrites th
      local old = redis.call('ZRANGE', base .. 'm', 0, over - 1, 'WITHSCORES')
      for j = 1, #old, 2 do unindex(old[j + 1], old[j]) end
      redis.call('ZREMRANGEBYRANK', base .. 'm', 0, over - 1)
      held, dropped = max, over
    end
  end
  if #pend > PENDING_MAX then pend = flush_pending(pend) end
  return dropped, before, held, pend
end

-- same_request reports whether rec, a request record "sum time id
-- seq,seq..." (or nil), has sum and is younger than cut (Unix ms).
local function same_request(rec, sum, cut)
  if not rec then return false end
  local s, t = string.match(rec, '^(%S+) (%d+) ')
  return s == sum and tonumber(t) > cut
end

-- find_request returns the record of key in the request records dd if it
-- is younger than cut and has sum, else nil.
local function find_request(dd, key, sum, cut)
  if key == '' then return nil end
  local rec = redis.call('HGET', dd, key)
  if same_request(rec, sum, cut) then return rec end
  return nil
end

-- trim_requests drops the records of dd older than cut and, when more
-- than cap remain, the oldest (by the Seq they gave the inbox) down to an
-- eighth below cap, so that an inbox at its cap does not trim at every
-- request. Returns how many remain.
local function trim_requests(dd, cut, cap)
  local all = redis.call('HGETALL', dd)
  local recs = {}
  for i = 1, #all, 2 do
    local t, seq = string.match(all[i + 1], '^%S+ (%d+) %d+ (%d+)')
    recs[#recs + 1] = {all[i], tonumber(t or '0'), tonumber(seq or '0')}
  end
  table.sort(recs, function(a, b) return a[3] < b[3] end)
  local keep = cap - math.floor(cap / 8)
  local drop = {}
  for _, r in ipairs(recs) do
    if r[2] <= cut or #recs - #drop > keep then drop[#drop + 1] = r[1] end
  end
  for i = 1, #drop, 1000 do -- unpack is limited by Lua's stack
    redis.call('HDEL', dd, unpack(drop, i, math.min(i + 999, #drop)))
  end
  return #recs - #drop
end

-- keep_requests looks after the request records dd after a write to it
-- that added added records (1 or 0): count is how many it held before and
-- kept when its expiry was last set (h's dn and dx; nil when unknown).
-- Over cap it trims (trim_requests); it keeps dd expiring at least window
-- ms after its newest record, setting the expiry only once a quarter
-- window. Returns the fields to write to h.
local function keep_requests(dd, count, kept, added, now, cut, cap, window)
  local quarter = math.floor(window / 4)
  local n
  if kept and tonumber(kept) + window + quarter <= now then
    n = added -- dd expired since its expiry was set: only this record
  elseif count then
    n = tonumber(count) + added
  else
    n = redis.call('HLEN', dd)
  end
  if n > cap then n = trim_requests(dd, cut, cap) end
  local fields = {'dn', string.format('%d', n)}
  if not kept or tonumber(kept) + quarter <= now then
    redis.call('PEXPIRE', dd, string.format('%d', window + quarter))
    fields[3], fields[4] = 'dx', string.format('%d', now)
  end
  return fields
end
`

// lockScript takes the append lock of an inbox for token, or finds it
// taken already by token (a retried call), and marks h (L = 1) so that
// the submit script, which reads h anyway, knows to look at lk. KEYS: h,
// lk, dd (the request records), bl (the block list). ARGV: token, ttl in ms, request key (""
// for none), its sum, the oldest record time still in the window (ms), a
// uid to refuse when bl holds it ("" for none). Returns {1, last id or
// "", highest Seq, the request's record or ""}, or, when another token
// holds the lock, {0, its remaining ms}, or {2, 0} when the uid is
// blocked (the lock is not taken).
const lockScript = `
if ARGV[6] ~= '' and redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 1 then return {2, 0} end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[2])}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'i', 's', 'L')
if h[3] ~= '1' then redis.call('HSET', KEYS[1], 'L', '1') end
return {1, h[1] or '', h[2] or '0', find_request(KEYS[3], ARGV[3], ARGV[4], tonumber(ARGV[5])) or ''}
`

// unlockScript releases the append lock if token holds it, and clears
// h's mark. KEYS: lk, h. ARGV: token.
const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'L', '0')
end
return 0
`

// appendScript appends to one inbox under the lock token holds (the
// Cluster protocol, see doc.go). KEYS: h, lk, m, th, dd. ARGV: token, id,
// time (ms), MaxPerInbox (0: none), n, request key ("" for none), its
// record, the oldest record time kept (ms), records kept at most, window
// (ms), then per entry the four values of append_entries (push due always
// "": the schedule is in another slot). It releases the lock and returns
// {first seq, messages dropped}.
//
// It also records its result under "a", so that a call retried after a
// lost reply (the lock is gone by then) returns the same result instead of
// failing or appending twice.
const appendScript = `
local token, id, now, max, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('GET', KEYS[2]) ~= token then
  local done = redis.call('HGET', KEYS[1], 'a')
  if done then
    local t, first, dropped = string.match(done, '^(%S+) (%d+) (%d+)$')
    if t == token then return {tonumber(first), tonumber(dropped)} end
  end
  return redis.error_reply('INBOXLOCK append lock lost (held longer than its ttl)')
end
local h = redis.call('HMGET', KEYS[1], 'i', 's', 'n', 'dn', 'dx', 'P')
if h[1] and not gt(id, h[1]) then
  return redis.error_reply('INBOXID id ' .. id .. ' not above the last id ' .. h[1])
end
local s = tonumber(h[2] or '0')
local dropped, _, held, pend = append_entries(s, h[3] and tonumber(h[3]), max, n, 11, {}, '', h[6] or '')
local first = s + 1
local fields = {'s', string.format('%d', s + n), 'i', id, 'n', string.format('%d', held),
  'a', token .. ' ' .. string.format('%d %d', first, dropped), 'L', '0', 'P', pend}
if ARGV[6] ~= '' then
  local added = redis.call('HSET', KEYS[5], ARGV[6], ARGV[7])
  local kept = keep_requests(KEYS[5], h[4], h[5], added, now, tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]))
  for _, f in ipairs(kept) do fields[#fields + 1] = f end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('DEL', KEYS[2])
return {first, dropped}
`

// submitScript appends a whole request in one atomic step, on a Redis
// that is not a Cluster (see doc.go). KEYS: per inbox h, lk, m, th; then
// the sweep index, the push schedule, and dd and bl of the first inbox.
// ARGV: token (unused), id, time (ms), MaxPerInbox, inboxes, request key
// ("" for none), its sum, the oldest record time kept (ms), records kept
// at most, window (ms), a uid to refuse when the first inbox's block list
// holds it ("" for none); then per inbox its uid and n, and per entry the
// four values of append_entries. Returns:
//
//	{"blocked", 0}                            the first inbox's owner blocked the uid to refuse
//	{"ok", first seq, dropped, ...per inbox}  appended
//	{"dup", record}                           the request is stored already
//	{"busy", ms}                              an appender of the lock protocol holds an inbox
//	{"floor", last id}                        id is not above an inbox's last id
//
// It is written for few commands, since every direct message runs it
// (11 for a direct message with a cid and a push check: EVALSHA, per inbox
// HMGET and HSET of h and a ZADD to the log and to the thread index, the
// HSETNX of the request record, the ZADD of the push entries). h carries
// what would otherwise cost a command of its own:
//
//   - n, the count of held messages, so that no ZCARD is needed below the
//     cap; the sweep index entry is written only when an inbox was empty
//     (or, in case a count was off, once every 64 Seqs: ZADD LT never
//     raises a score);
//   - P, the pending th entries (pend_add): th is written once P is full;
//   - L, set by a node of the lock protocol while it may hold lk: only then
//     is lk looked at (PTTL); an expired lock's mark is cleared here;
//   - b, whether the owner's block list has members ("0" or "1", written
//     by Block and Unblock): the block list is read (SISMEMBER, before the
//     dedupe lookup, so that a resend to a user who blocked the sender is
//     refused too) only when it may hold the sender. An inbox without b
//     (written before it existed) is checked and gets it.
//
// The request key is looked up and recorded by one HSETNX.
const submitScript = `
local id, nowArg, max, ni = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key, sum, cut, cap, window = ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local refuse = ARGV[11]
local now = tonumber(nowArg)
local nk = 4 * ni
local heads, floor = {}, ''
for i = 0, ni - 1 do
  heads[i] = redis.call('HMGET', KEYS[4 * i + 1], 's', 'i', 'n', 'dn', 'dx', 'L', 'P', 'b')
end
local blocks -- the first inbox's b, when learned here
if refuse ~= '' and heads[0][8] ~= '0' then
  local bl = KEYS[nk + 4]
  if redis.call('SISMEMBER', bl, refuse) == 1 then return {'blocked', 0} end
  if not heads[0][8] then blocks = string.format('%d', redis.call('EXISTS', bl)) end
end
for i = 0, ni - 1 do
  if heads[i][6] == '1' then
    local held = redis.call('PTTL', KEYS[4 * i + 2])
    if held > 0 then return {'busy', held} end
  end
end
for i = 0, ni - 1 do
  local last = heads[i][2]
  if last and not gt(id, last) and gt(last, floor) then floor = last end
end
if floor ~= '' then return {'floor', floor} end
local kept = {}
if key ~= '' then
  local seqs, at = {}, 12
  for i = 0, ni - 1 do
    local s, n = tonumber(heads[i][1] or '0'), tonumber(ARGV[at + 1])
    for k = 1, n do seqs[#seqs + 1] = string.format('%d', s + k) end
    at = at + 2 + 4 * n
  end
  local dd = KEYS[nk + 3]
  local rec = sum .. ' ' .. nowArg .. ' ' .. id .. ' ' .. table.concat(seqs, ',')
  if redis.call('HSETNX', dd, key, rec) == 1 then
    kept = keep_requests(dd, heads[0][4], heads[0][5], 1, now, cut, cap, window)
  else
    local old = redis.call('HGET', dd, key)
    if same_request(old, sum, cut) then return {'dup', old} end
    redis.call('HSET', dd, key, rec) -- an expired record, or another request under the key
  end
end
local out, pushes, index = {'ok'}, {}, {}
local at = 12
for i = 0, ni - 1 do
  base = string.sub(KEYS[4 * i + 1], 1, -2)
  local h = heads[i]
  local uid, n = ARGV[at], tonumber(ARGV[at + 1])
  local s = tonumber(h[1] or '0')
  local dropped, before, held, pend = append_entries(s, h[3] and tonumber(h[3]), max, n, at + 2, pushes, uid, h[7] or '')
  at = at + 2 + 4 * n
  local fields = {'s', string.format('%d', s + n), 'i', id, 'n', string.format('%d', held)}
  if pend ~= (h[7] or '') then fields[#fields + 1], fields[#fields + 2] = 'P', pend end
  if h[6] == '1' then fields[#fields + 1], fields[#fields + 2] = 'L', '0' end -- its lock expired
  if i == 0 then
    for _, f in ipairs(kept) do fields[#fields + 1] = f end
    if blocks then fields[#fields + 1], fields[#fields + 2] = 'b', blocks end
  end
  redis.call('HSET', KEYS[4 * i + 1], unpack(fields))
  if before == 0 or math.floor((s + n) / 64) > math.floor(s / 64) then
    index[#index + 1], index[#index + 2] = nowArg, uid
  end
  out[#out + 1], out[#out + 2] = s + 1, dropped
end
if #pushes > 0 then redis.call('ZADD', KEYS[nk + 2], unpack(pushes)) end
if #index > 0 then redis.call('ZADD', KEYS[nk + 1], 'LT', unpack(index)) end
return out
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
// cut, oldest Seq first: each message's time is read from the message
// itself, so the scan stops at the first one appended at or after cut.
// (Layout 1 appends also wrote a time index, tm; it is cleared here.)
// KEYS: h, m, tm, th, lk. ARGV: cut (ms), limit. Returns {dropped, 1 if
// there may be more, the oldest remaining time or "", 1 if the append
// lock is held}.
const expireScript = `
local cut, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
flush_stored()
local old = redis.call('ZRANGE', KEYS[2], 0, limit - 1, 'WITHSCORES')
local n = 0
for j = 1, #old, 2 do
  local t = timeof(old[j])
  if t == nil or t >= cut then break end
  unindex(old[j + 1], old[j])
  n = n + 1
end
if n > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1)
  uncount(n)
end
local more = 0
if n == limit then more = 1 end
local first = old[2 * n + 1] or redis.call('ZRANGE', KEYS[2], 0, 0)[1]
local oldest = ''
if first then
  oldest = string.format('%d', timeof(first) or cut)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1])
else
  redis.call('DEL', KEYS[3])
end
return {n, more, oldest, redis.call('EXISTS', KEYS[5])}
`

// probeScript tells the sweep whether an inbox may need its index entry
// back. KEYS: h, m, lk. Returns {oldest time or "", 1 if locked}.
const probeScript = `
local first = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
local oldest = ''
if first then oldest = string.format('%d', timeof(first) or 0) end
return {oldest, redis.call('EXISTS', KEYS[3])}
`

// deleteScript removes one message and its index entries. KEYS: h, m.
// ARGV: seq. Returns 1 if it was held.
const deleteScript = `
local m = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[1])[1]
if not m then return 0 end
flush_stored()
unindex(ARGV[1], m)
redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[1])
uncount(1)
return 1
`

// pendingMax is how many bytes of pending th entries (see pend_add) an
// inbox keeps in h before an append writes them to th: about 20 entries
// of short uids, so th costs an append about one command in 20 instead of
// one, and h's field stays small.
const pendingMax = 200

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
		"PENDING_MAX", strconv.Itoa(pendingMax),
	).Replace(luaPrelude + body)
	return redis.NewScript("-- inboxmq " + name + "\n" + src)
}
