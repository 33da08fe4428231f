package marketdata

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/valkey-io/valkey-go"
	"golang.org/x/sync/singleflight"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
)

// redisSink writes with fenced Lua scripts: nothing lands once the lease
// that fence names is lost. Every read is bounded by the key's MaxValue in
// Redis itself (a script measures each member with string.len, each field
// with HSTRLEN, and returns only those within the limit), so an oversized
// value written by hand never crosses the wire.
type redisSink struct {
	cl      valkey.Client
	fence   leader.Fence
	window  int
	timeout time.Duration
	// maxFields bounds the fields a whole-hash read returns.
	maxFields int
	// report counts and logs what readers skip (cache.ReportBad).
	report func(key, kind, reason, detail string)
	// checks, on the leader's sink only, says when each key's whole
	// content was last checked; nil on a reader's sink.
	checks *checkTimes
	// skips and flights are the node's: the oversized members its reads
	// pass around, and the kline reads in flight (concurrent identical
	// reads share one).
	skips   *skipMemo
	flights *singleflight.Group
}

// skipMemo remembers, per series, the scores where reads found a member
// over the size limit, so later reads pass around them in Redis instead
// of fetching them again. A script can only measure a member after
// copying it — for 30 MB, about 90 ms during which Redis serves nobody
// else — and the leader may take up to CheckEvery to remove it (never,
// for a series it does not write). A score is forgotten when it holds
// fewer members than when it was found (the member is gone), or after
// ttl; while remembered, a kline sharing its score is not read either.
type skipMemo struct {
	ttl time.Duration

	mu   sync.Mutex // guards keys
	keys *simplelru.LRU[string, map[string]skipAt]
}

type skipAt struct {
	count int64 // members at the score when the oversized one was found
	until time.Time
}

// maxSkips bounds the scores remembered per series.
const maxSkips = 64

func newSkipMemo(ttl time.Duration) *skipMemo {
	l, _ := simplelru.NewLRU[string, map[string]skipAt](1024, nil)
	return &skipMemo{ttl: ttl, keys: l}
}

// args returns the score, count pairs remembered for key.
func (m *skipMemo) args(key string) []string {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.keys.Get(key)
	if !ok {
		return nil
	}
	now := time.Now()
	var out []string
	for score, s := range at {
		if now.After(s.until) {
			delete(at, score)
			continue
		}
		out = append(out, score, strconv.FormatInt(s.count, 10))
	}
	return out
}

// update remembers the oversized scores a read found and forgets those
// it found gone.
func (m *skipMemo) update(key string, found map[string]int64, gone []string) {
	if m == nil || len(found)+len(gone) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.keys.Get(key)
	if !ok {
		at = map[string]skipAt{}
		m.keys.Add(key, at)
	}
	for _, score := range gone {
		delete(at, score)
	}
	until := time.Now().Add(m.ttl)
	for score, count := range found {
		if _, ok := at[score]; ok || len(at) < maxSkips {
			at[score] = skipAt{count: count, until: until}
		}
	}
}

// checkTimes records when the leader last checked all of a key, so every
// member of a series and every field of a hash is checked once per
// interval, and the first write of a term checks all.
type checkTimes struct {
	every time.Duration

	mu   sync.Mutex // guards last
	last map[string]time.Time
}

func newCheckTimes(every time.Duration) *checkTimes {
	return &checkTimes{every: every, last: map[string]time.Time{}}
}

// due reports whether key's whole content should be checked now.
func (c *checkTimes) due(key string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	last, ok := c.last[key]
	return !ok || time.Since(last) >= c.every
}

// done records a check of all of key.
func (c *checkTimes) done(key string) {
	c.mu.Lock()
	c.last[key] = time.Now()
	c.mu.Unlock()
}

// repair is what a leader's write removed because no reader can use it.
type repair struct {
	// replaced is the Redis type of a key of the wrong type the write
	// deleted before writing ("" if none).
	replaced string
	// removed lists the members (by score) or fields (by name) removed:
	// over the size limit, undecodable, or not the record their place
	// says (a kline whose open time is not its score, a ticker whose
	// symbol is not its field).
	removed []removedValue
}

type removedValue struct {
	at   string // the member's score or the field's name
	size int
}

// klineCheck is the Lua function telling whether a member at score is a
// kline every reader decodes: within max bytes, a JSON object whose "t" is
// its score and whose fields have exchange.Kline's JSON types.
const klineCheck = `
local function kline(m, score, max)
  if string.len(m) > max then return false end
  local ok, k = pcall(cjson.decode, m)
  if not ok or type(k) ~= 'table' or k.t ~= tonumber(score) then return false end
  for _, f in ipairs({'s', 'i', 'o', 'h', 'l', 'c', 'v', 'q', 'V', 'Q'}) do
    if k[f] ~= nil and k[f] ~= cjson.null and type(k[f]) ~= 'string' then return false end
  end
  for _, f in ipairs({'T', 'n'}) do
    local v = k[f]
    if v ~= nil and v ~= cjson.null and (type(v) ~= 'number' or v ~= math.floor(v)) then return false end
  end
  return k.x == nil or k.x == cjson.null or type(k.x) == 'boolean'
end
`

// putKlinesScript upserts klines into one or more series, fenced. For
// each series, before writing it replaces a key of another type; after,
// it removes every member from its "from" score ('-inf': all) up that no
// reader can use. Then it trims the window and refreshes the TTL.
// KEYS[2..] are the series; ARGV[2] the window, then per series: TTL
// (ms), the largest member, from, the number of klines n, and n score,
// member pairs. It returns, per series, {replaced type or ”, {score,
// size, ...}}. One script writes many series because at Binance's cadence
// a flush holds an update of most series: a script each would cost the
// leader a round of command building, reply parsing and scheduling per
// series.
var putKlinesScript = valkey.NewLuaScript(leader.FenceCheck + klineCheck + `
local window = tonumber(ARGV[2])
local function put(key, ttl, max, from, p, n)
  local replaced = ''
  local t = redis.call('TYPE', key).ok
  if t ~= 'zset' and t ~= 'none' then
    redis.call('DEL', key)
    replaced = t
  end
  for i = p, p + 2 * n - 1, 2 do
    -- A closed kline is final: an open version of it (a late, restored
    -- update) never replaces it.
    local old = redis.call('ZRANGEBYSCORE', key, ARGV[i], ARGV[i])
    if not (old[1] and string.find(old[1], '"x":true', 1, true) and not string.find(ARGV[i+1], '"x":true', 1, true)) then
      redis.call('ZREMRANGEBYSCORE', key, ARGV[i], ARGV[i])
      redis.call('ZADD', key, ARGV[i], ARGV[i+1])
    end
  end
  local removed = {}
  local ms = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES')
  for i = 1, #ms, 2 do
    if not kline(ms[i], ms[i+1], max) then
      redis.call('ZREM', key, ms[i])
      removed[#removed+1] = ms[i+1]
      removed[#removed+1] = string.len(ms[i])
    end
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -window - 1)
  redis.call('PEXPIRE', key, ttl)
  return {replaced, removed}
end
local out = {}
local p = 3
for j = 2, #KEYS do
  local n = tonumber(ARGV[p+3])
  -- A series that fails (a script is not rolled back) is reported on its
  -- own: the others' writes and repairs stand and are reported.
  local ok, r = pcall(put, KEYS[j], ARGV[p], tonumber(ARGV[p+1]), ARGV[p+2], p + 4, n)
  if ok then
    out[#out+1] = r
  else
    if type(r) == 'table' then r = r.err end
    out[#out+1] = {'!', tostring(r)}
  end
  p = p + 4 + 2 * n
end
return out
`)

// putFieldsScript sets fields of a hash, fenced. Before writing it
// replaces a key of another type; with ARGV[3] set (the largest value) it
// then removes every field no reader can use: over the limit (measured,
// not fetched), not a JSON object, or whose "symbol" is not the field. KEYS[2] is the hash; ARGV[2]
// the TTL (ms), ARGV[4..] field, value pairs. It returns {replaced type or
// ”, {field, size, ...}}.
var putFieldsScript = valkey.NewLuaScript(leader.FenceCheck + `
local replaced = ''
local t = redis.call('TYPE', KEYS[2]).ok
if t ~= 'hash' and t ~= 'none' then
  redis.call('DEL', KEYS[2])
  replaced = t
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
end
local removed = {}
if ARGV[3] ~= '' then
  local max = tonumber(ARGV[3])
  for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
    local size = redis.call('HSTRLEN', KEYS[2], f)
    local good = size <= max
    if good then
      local ok, d = pcall(cjson.decode, redis.call('HGET', KEYS[2], f))
      good = ok and type(d) == 'table' and d.symbol == f
    end
    if not good then
      redis.call('HDEL', KEYS[2], f)
      removed[#removed+1] = f
      removed[#removed+1] = size
    end
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {replaced, removed}
`)

// putValuesScript sets string keys, fenced: KEYS[2..] with ARGV value,
// TTL (ms) pairs from ARGV[2].
var putValuesScript = valkey.NewLuaScript(leader.FenceCheck + `
for j = 2, #KEYS do
  redis.call('SET', KEYS[j], ARGV[2*j-2], 'PX', ARGV[2*j-1])
end
return 1
`)

// readKlinesScript returns the newest ARGV[1] members of the series
// KEYS[1] within ARGV[2] bytes each, newest first, passing over at most
// ARGV[3] longer ones, which it measures but does not return. ARGV[4..]
// are score, count pairs: scores where an earlier read found an oversized
// member, and how many members they held then. A score that still holds
// as many is passed around by score, without fetching what it holds; one
// that holds fewer (the member was removed) is read again, and returned
// in the fourth element so the reader forgets it. The reply is {type,
// {member, score, ...}, {score, size, count at score, ...}, {forgotten
// score, ...}, {score passed around, ...}}; a key of another type (or
// none) returns its type and nothing else.
var readKlinesScript = valkey.NewLuaScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'zset' then return {t, {}, {}, {}, {}} end
local n, max, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local skip, gone = {}, {}
for i = 4, #ARGV, 2 do
  if redis.call('ZCOUNT', KEYS[1], ARGV[i], ARGV[i]) >= tonumber(ARGV[i+1]) then
    skip[#skip+1] = ARGV[i]
  else
    gone[#gone+1] = ARGV[i]
  end
end
table.sort(skip, function(a, b) return tonumber(a) > tonumber(b) end)
local got, over, around = {}, {}, {}
local have, passed = 0, 0
local hi = '+inf'
for j = 1, #skip + 1 do
  local lo = '-inf'
  if skip[j] then lo = '(' .. skip[j] end
  local offset = 0
  while have < n and passed < budget do
    local want = n - have
    local page = redis.call('ZREVRANGEBYSCORE', KEYS[1], hi, lo, 'WITHSCORES', 'LIMIT', offset, want)
    for i = 1, #page, 2 do
      local size = string.len(page[i])
      if size > max then
        over[#over+1] = page[i+1]
        over[#over+1] = size
        over[#over+1] = redis.call('ZCOUNT', KEYS[1], page[i+1], page[i+1])
        passed = passed + 1
      else
        got[#got+1] = page[i]
        got[#got+1] = page[i+1]
        have = have + 1
      end
    end
    if #page < 2 * want then break end
    offset = offset + want
  end
  if have >= n or passed >= budget or not skip[j] then break end
  around[#around+1] = skip[j]
  hi = '(' .. skip[j]
end
return {t, got, over, gone, around}
`)

// lastOpenScript returns the score of the newest member of the series
// KEYS[1] that is a kline readers decode (ARGV[1]: the largest member),
// looking at the newest 64 at most; '0' if none (or another type).
var lastOpenScript = valkey.NewLuaScript(klineCheck + `
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then return '0' end
for rank = 0, 63 do
  local m = redis.call('ZREVRANGE', KEYS[1], rank, rank, 'WITHSCORES')
  if #m == 0 then break end
  if kline(m[1], m[2], tonumber(ARGV[1])) then return m[2] end
end
return '0'
`)

// readFieldScript returns {type, value, size} of field ARGV[1] of the hash
// KEYS[1]; the value is nil when the field is missing (size 0) or longer
// than ARGV[2] bytes (then only measured).
var readFieldScript = valkey.NewLuaScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'hash' then return {t, false, 0} end
local size = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if size > tonumber(ARGV[2]) then return {t, false, size} end
return {t, redis.call('HGET', KEYS[1], ARGV[1]), size}
`)

// readHashScript returns {type, {field, value, ...}, {field, size, ...}}:
// at most ARGV[2] fields of the hash KEYS[1] with values within ARGV[1]
// bytes, and the longer ones, measured (HSTRLEN) but never fetched.
var readHashScript = valkey.NewLuaScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'hash' then return {t, {}, {}} end
local max, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local got, over = {}, {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local size = redis.call('HSTRLEN', KEYS[1], f)
  if size > max then
    over[#over+1] = f
    over[#over+1] = size
  elseif #got < 2 * most then
    got[#got+1] = f
    got[#got+1] = redis.call('HGET', KEYS[1], f)
  end
end
return {t, got, over}
`)

// maxPassedOver bounds the oversized members one kline read passes over
// to fill its answer.
const maxPassedOver = 16

func (s *redisSink) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Bounds of one putKlinesScript call: Redis runs a script alone, so a
// flush of thousands of series is cut into scripts of at most this many
// series and klines, a series whose write checks all its members counting
// as a window of klines (a millisecond or a few of Redis's time each).
const (
	maxScriptSeries = 128
	maxScriptKlines = 1024
)

// scriptBatch is the keys and arguments of one fenced batch script:
// KEYS[1] and ARGV[1] the fence, then the writes of indexes idx.
type scriptBatch struct {
	idx    []int
	keys   []string
	args   []string
	weight int
}

// batcher cuts writes into fenced scripts of writes sharing a slot (all
// of them on one Redis), each of at most maxWrites writes and maxWeight
// weight (a write heavier than maxWeight gets a script of its own).
type batcher struct {
	s                    *redisSink
	head                 []string // ARGV[2..] of every script
	maxWrites, maxWeight int
	cluster              bool
	open                 map[string]*scriptBatch // by slot: the batch being filled
	batches              []*scriptBatch
}

func (s *redisSink) batcher(maxWrites, maxWeight int, head ...string) *batcher {
	return &batcher{s: s, head: head, maxWrites: maxWrites, maxWeight: maxWeight,
		cluster: s.cl.Mode() == valkey.ClientModeCluster, open: map[string]*scriptBatch{}}
}

// add returns the batch write i of key, weighing weight, goes to, with
// key appended to its KEYS; the caller appends the write's arguments.
func (bt *batcher) add(i int, key keyspace.Key, weight int) (*scriptBatch, error) {
	if err := key.Valid(); err != nil {
		return nil, err
	}
	fk, token, err := bt.s.fence.For(key)
	if err != nil {
		return nil, err
	}
	slot := ""
	if bt.cluster {
		slot = keyspace.HashTag(key.Name())
	}
	// A batch shares its fence: all of one slot on a cluster, and on one
	// Redis all under the lease (standard naming) or one symbol's slot
	// fence (cluster naming on a single server).
	group := slot
	if token != "" {
		group = fk + "\x00" + slot
	}
	g := bt.open[group]
	if g == nil || len(g.idx) == bt.maxWrites || g.weight+weight > bt.maxWeight && len(g.idx) > 0 {
		g = &scriptBatch{keys: []string{fk}, args: append([]string{token}, bt.head...)}
		bt.open[group] = g
		bt.batches = append(bt.batches, g)
	}
	g.idx = append(g.idx, i)
	g.keys = append(g.keys, key.Name())
	g.weight += weight
	return g, nil
}

// scriptWorkers bounds a batch of writes' scripts in flight: valkey-go
// pipelines them on one connection, and each has its own deadline (a
// script that checks whole series may take milliseconds of Redis's time,
// and a term's first flush holds one per series).
const scriptWorkers = 8

// exec runs the batches' scripts, at most scriptWorkers at once, each with
// its own deadline, and calls done (concurrently) with each batch's reply.
// Each is EVALSHA, falling back to EVAL once if Redis does not hold the
// script yet.
func (bt *batcher) exec(ctx context.Context, script *valkey.Lua, done func(g *scriptBatch, r valkey.ValkeyResult)) {
	jobs := make([]func(), len(bt.batches))
	for i, g := range bt.batches {
		jobs[i] = func() {
			cctx, cancel := bt.s.ctx(ctx)
			defer cancel()
			done(g, script.Exec(cctx, bt.s.cl, g.keys, g.args))
		}
	}
	runJobs(jobs, scriptWorkers)
}

// putSeries writes the series that share a slot (all of them on one
// Redis) with one script per maxScriptSeries, pipelined.
func (s *redisSink) putSeries(ctx context.Context, ws []seriesWrite) []seriesResult {
	res := make([]seriesResult, len(ws))
	bt := s.batcher(maxScriptSeries, maxScriptKlines, strconv.Itoa(s.window))
	var buf []byte
	for i, w := range ws {
		from := "-inf"
		if len(w.ks) > 0 && !s.checks.due(w.key.Name()) {
			from = strconv.FormatInt(slices.MinFunc(w.ks, func(a, b exchange.Kline) int { return cmp.Compare(a.OpenTime, b.OpenTime) }).OpenTime, 10)
		}
		// A write that checks the whole series decodes up to a window of
		// members in Redis: it weighs that much.
		weight := len(w.ks)
		if from == "-inf" {
			weight += s.window
		}
		g, err := bt.add(i, w.key, weight)
		if err != nil {
			res[i].err = err
			continue
		}
		res[i].checkedAll = from == "-inf"
		g.args = append(g.args, ms(w.key.TTL()), strconv.Itoa(w.key.MaxValue()), from, strconv.Itoa(len(w.ks)))
		for _, k := range w.ks {
			buf = k.AppendJSON(buf[:0])
			g.args = append(g.args, strconv.FormatInt(k.OpenTime, 10), string(buf))
		}
	}
	bt.exec(ctx, putKlinesScript, func(g *scriptBatch, r valkey.ValkeyResult) {
		arr, err := r.ToArray()
		if err == nil && len(arr) != len(g.idx) {
			err = fmt.Errorf("unexpected reply of %d series for %d", len(arr), len(g.idx))
		}
		for j, i := range g.idx {
			var rp repair
			werr := err
			if werr == nil {
				if msg, failed := seriesFailed(arr[j]); failed {
					werr = errors.New(msg)
				} else {
					rp, werr = parseRepair(arr[j])
				}
			}
			if werr != nil {
				res[i].err = fmt.Errorf("marketdata: write %s: %w", ws[i].key, werr)
				continue
			}
			res[i].rp = rp
			if res[i].checkedAll && s.checks != nil {
				s.checks.done(ws[i].key.Name())
			}
		}
	})
	return res
}

// seriesFailed reports whether a putKlinesScript reply of one series is
// its failure ({"!", message}).
func seriesFailed(m valkey.ValkeyMessage) (string, bool) {
	arr, err := m.ToArray()
	if err != nil || len(arr) != 2 {
		return "", false
	}
	if mark, _ := arr[0].ToString(); mark != "!" {
		return "", false
	}
	msg, _ := arr[1].ToString()
	return msg, true
}

// parseRepair reads a put script's {replaced, {at, size, ...}}.
func parseRepair(res valkey.ValkeyMessage) (repair, error) {
	arr, err := res.ToArray()
	if err != nil {
		return repair{}, err
	}
	if len(arr) != 2 {
		return repair{}, fmt.Errorf("unexpected reply of %d elements", len(arr))
	}
	var rp repair
	rp.replaced, _ = arr[0].ToString()
	removed, _ := arr[1].ToArray()
	for i := 0; i+1 < len(removed); i += 2 {
		at, _ := removed[i].ToString()
		size, _ := removed[i+1].AsInt64()
		rp.removed = append(rp.removed, removedValue{at: at, size: int(size)})
	}
	return rp, nil
}

// klines reads the newest n klines within the key's size limit. Members
// over it are passed over in Redis (and reported); members that do not
// decode as a kline at their score are skipped here (and reported), and
// the read asks once more to make up for them. A key of another type is
// reported and reads as empty: the leader replaces it. Concurrent reads of
// the same series and length share one read.
func (s *redisSink) klines(ctx context.Context, key keyspace.Key, n int) ([]exchange.Kline, error) {
	var r klineRead
	var err error
	if s.flights == nil {
		r, err = s.klinesNow(ctx, key, n)
	} else {
		ch := s.flights.DoChan(key.Name()+" "+strconv.Itoa(n), func() (any, error) {
			return s.klinesNow(context.WithoutCancel(ctx), key, n)
		})
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("marketdata: read %s: %w", key, ctx.Err())
		case res := <-ch:
			r, err = res.Val.(klineRead), res.Err
			r.klines = slices.Clone(r.klines)
		}
	}
	// Each caller counts what its answer lacks, shared read or not.
	for _, b := range r.bad {
		s.reportBad(key, b.reason, b.detail)
	}
	return r.klines, err
}

// klineRead is a read's klines, oldest first, and what it left out.
type klineRead struct {
	klines []exchange.Kline
	bad    []badNote
}

type badNote struct{ reason, detail string }

func (s *redisSink) klinesNow(ctx context.Context, key keyspace.Key, n int) (klineRead, error) {
	var r klineRead
	skipped, full, err := s.readKlines(ctx, key, n, &r)
	if err == nil && skipped > 0 && full {
		// Make up for the members that did not decode; they are read (and
		// left out) again, but noted once.
		again := klineRead{}
		_, _, err = s.readKlines(ctx, key, n+skipped, &again)
		r.klines = again.klines[max(0, len(again.klines)-n):]
	}
	return r, err
}

// readKlines is one bounded read of the newest n members into r, oldest
// first; skipped counts those that did not decode, full whether Redis
// returned all n asked for (so there may be more).
func (s *redisSink) readKlines(ctx context.Context, key keyspace.Key, n int, r *klineRead) (skipped int, full bool, err error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	args := append([]string{strconv.Itoa(n), strconv.Itoa(key.MaxValue()), strconv.Itoa(maxPassedOver)}, s.skips.args(key.Name())...)
	arr, err := readKlinesScript.Exec(cctx, s.cl, []string{key.Name()}, args).ToArray()
	if err != nil {
		return 0, false, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	if len(arr) != 5 {
		return 0, false, fmt.Errorf("marketdata: read %s: unexpected reply of %d elements", key, len(arr))
	}
	typ, got, over, err := parseRead(arr[:3])
	if err != nil {
		return 0, false, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	note := func(reason, detail string) { r.bad = append(r.bad, badNote{reason, detail}) }
	if typ != keyspace.TypeZSet {
		if typ != "none" {
			note(cache.BadWrongType, fmt.Sprintf("the key is a %s, not a sorted set; read as empty until the leader replaces it", typ))
		}
		return 0, false, nil
	}
	found := map[string]int64{}
	for i := 0; i+2 < len(over); i += 3 {
		note(cache.BadOversized, fmt.Sprintf("member at score %s is %s bytes, over the limit of %d; skipped", over[i], over[i+1], key.MaxValue()))
		found[over[i]], _ = strconv.ParseInt(over[i+2], 10, 64)
	}
	for _, score := range strs(arr[4]) {
		note(cache.BadOversized, fmt.Sprintf("member at score %s was over the limit of %d when last read; skipped", score, key.MaxValue()))
	}
	s.skips.update(key.Name(), found, strs(arr[3]))
	r.klines = make([]exchange.Kline, 0, len(got)/2)
	for i := 0; i+1 < len(got); i += 2 {
		k, err := decodeKline(got[i], got[i+1])
		if err != nil {
			skipped++
			note(cache.BadUndecodable, fmt.Sprintf("member at score %s: %v; skipped", got[i+1], err))
			continue
		}
		r.klines = append(r.klines, k)
	}
	slices.Reverse(r.klines)
	return skipped, len(got)/2 == n, nil
}

// decodeKline decodes a member of a kline series; its open time must be
// its score.
func decodeKline(member, score string) (exchange.Kline, error) {
	var k exchange.Kline
	if err := json.Unmarshal([]byte(member), &k); err != nil {
		return k, err
	}
	if strconv.FormatInt(k.OpenTime, 10) != score {
		return k, fmt.Errorf("open time %d is not its score", k.OpenTime)
	}
	return k, nil
}

// parseRead reads a bounded read's {type, {…}, {…}} as strings.
func parseRead(arr []valkey.ValkeyMessage) (typ string, got, over []string, err error) {
	if len(arr) != 3 {
		return "", nil, nil, fmt.Errorf("unexpected reply of %d elements", len(arr))
	}
	if typ, err = arr[0].ToString(); err != nil {
		return "", nil, nil, err
	}
	return typ, strs(arr[1]), strs(arr[2]), nil
}

// strs reads an array of strings and integers as strings.
func strs(m valkey.ValkeyMessage) []string {
	a, _ := m.ToArray()
	out := make([]string, len(a))
	for i, e := range a {
		if s, err := e.ToString(); err == nil {
			out[i] = s
		} else if n, err := e.AsInt64(); err == nil {
			out[i] = strconv.FormatInt(n, 10)
		}
	}
	return out
}

func (s *redisSink) reportBad(key keyspace.Key, reason, detail string) {
	if s.report != nil {
		s.report(key.Name(), key.Kind(), reason, detail)
	}
}

func (s *redisSink) lastOpen(ctx context.Context, key keyspace.Key) (int64, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := lastOpenScript.Exec(cctx, s.cl, []string{key.Name()}, []string{strconv.Itoa(key.MaxValue())}).ToString()
	if err != nil {
		return 0, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("marketdata: read %s: score %q: %w", key, v, err)
	}
	return int64(f), nil
}

func (s *redisSink) putFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) (repair, error) {
	if err := key.Valid(); err != nil {
		return repair{}, err
	}
	check := s.checks.due(key.Name())
	limit := ""
	if check {
		limit = strconv.Itoa(key.MaxValue())
	}
	fk, token, err := s.fence.For(key)
	if err != nil {
		return repair{}, err
	}
	args := make([]string, 0, 3+2*len(fields))
	args = append(args, token, ms(key.TTL()), limit)
	for f, v := range fields {
		args = append(args, f, string(v))
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	msg, err := putFieldsScript.Exec(cctx, s.cl, []string{fk, key.Name()}, args).ToMessage()
	var rp repair
	if err == nil {
		rp, err = parseRepair(msg)
	}
	if err != nil {
		return repair{}, fmt.Errorf("marketdata: write %s: %w", key, err)
	}
	if check {
		s.checks.done(key.Name())
	}
	return rp, nil
}

// field reads one field within the key's size limit; a longer one is
// reported and reads as missing, as does a key of another type.
func (s *redisSink) field(ctx context.Context, key keyspace.Key, f string) ([]byte, bool, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	arr, err := readFieldScript.Exec(cctx, s.cl, []string{key.Name()}, []string{f, strconv.Itoa(key.MaxValue())}).ToArray()
	if err == nil && len(arr) != 3 {
		err = fmt.Errorf("unexpected reply of %d elements", len(arr))
	}
	if err != nil {
		return nil, false, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	typ, _ := arr[0].ToString()
	switch typ {
	case keyspace.TypeHash:
	case "none":
		return nil, false, nil
	default:
		s.reportBad(key, cache.BadWrongType, fmt.Sprintf("the key is a %s, not a hash; read as empty until the leader replaces it", typ))
		return nil, false, nil
	}
	b, err := arr[1].AsBytes()
	if valkey.IsValkeyNil(err) {
		if size, _ := arr[2].AsInt64(); size > 0 {
			s.reportBad(key, cache.BadOversized, fmt.Sprintf("field %s is %d bytes, over the limit of %d; skipped", f, size, key.MaxValue()))
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	return b, true, nil
}

// fields reads the hash's fields within the key's size limit, at most
// maxFields of them; longer ones are reported and skipped, and a key of
// another type reads as empty.
func (s *redisSink) fields(ctx context.Context, key keyspace.Key) (map[string][]byte, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	arr, err := readHashScript.Exec(cctx, s.cl, []string{key.Name()}, []string{strconv.Itoa(key.MaxValue()), strconv.Itoa(s.maxFields)}).ToArray()
	if err != nil {
		return nil, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	typ, got, over, err := parseRead(arr)
	if err != nil {
		return nil, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	if typ != keyspace.TypeHash {
		if typ != "none" {
			s.reportBad(key, cache.BadWrongType, fmt.Sprintf("the key is a %s, not a hash; read as empty until the leader replaces it", typ))
		}
		return map[string][]byte{}, nil
	}
	for i := 0; i+1 < len(over); i += 2 {
		s.reportBad(key, cache.BadOversized, fmt.Sprintf("field %s is %s bytes, over the limit of %d; skipped", over[i], over[i+1], key.MaxValue()))
	}
	out := make(map[string][]byte, len(got)/2)
	for i := 0; i+1 < len(got); i += 2 {
		out[got[i]] = []byte(got[i+1])
	}
	return out, nil
}

// Bounds of one putValuesScript call.
const (
	maxScriptValues     = 256
	maxScriptValueBytes = 256 << 10
)

// putValues sets the string keys, with their TTLs, fenced: one script
// per batch of keys sharing a slot, pipelined.
func (s *redisSink) putValues(ctx context.Context, ws []valueWrite) []error {
	errs := make([]error, len(ws))
	bt := s.batcher(maxScriptValues, maxScriptValueBytes)
	for i, w := range ws {
		g, err := bt.add(i, w.key, len(w.v))
		if err != nil {
			errs[i] = err
			continue
		}
		g.args = append(g.args, string(w.v), ms(w.key.TTL()))
	}
	bt.exec(ctx, putValuesScript, func(g *scriptBatch, r valkey.ValkeyResult) {
		if err := r.Error(); err != nil {
			for _, i := range g.idx {
				errs[i] = fmt.Errorf("marketdata: write %s: %w", ws[i].key, err)
			}
		}
	})
	return errs
}

// replaceFieldsScript replaces a hash whole, atomically: readers see the
// old fields or the new ones, never none. Not fenced: any node may write
// what the exchange lists. KEYS: the hash. ARGV: TTL (ms), field, value, …
var replaceFieldsScript = valkey.NewLuaScript(`
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

func (s *redisSink) replaceFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) error {
	if err := key.Valid(); err != nil {
		return err
	}
	args := make([]string, 0, 1+2*len(fields))
	args = append(args, ms(key.TTL()))
	for f, v := range fields {
		args = append(args, f, string(v))
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := replaceFieldsScript.Exec(cctx, s.cl, []string{key.Name()}, args).Error(); err != nil {
		return fmt.Errorf("marketdata: write %s: %w", key, err)
	}
	return nil
}

func (s *redisSink) age(ctx context.Context, key keyspace.Key) (time.Duration, bool, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	left, err := s.cl.Do(cctx, s.cl.B().Pttl().Key(key.Name()).Build()).AsInt64()
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("marketdata: read %s: %w", key, err)
	case left == -2:
		return 0, false, nil
	case left < 0: // no TTL: not written by us; count it stale
		return key.TTL(), true, nil
	}
	return keyAge(key, time.Duration(left)*time.Millisecond), true, nil
}
