package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Chaos configures FaultChaos: every stream fault at once, on each
// connection, on a schedule drawn from Seed and the connection's number
// (connections are numbered in the order the server accepts them), so a
// seed replays the same faults on the same connections. Each "Every" is the
// mean real time between two events of that kind on one connection
// (exponentially distributed); 0 takes the default, a negative value never
// happens.
type Chaos struct {
	// Seed draws the schedules.
	Seed int64
	// DropEvery: the connection is dropped (default 4 s), each time in one
	// of four ways, drawn: a close frame 1001 (going away), a close frame
	// 1008 (policy violation), a TCP reset, or a FIN without a close frame.
	DropEvery time.Duration
	// StallEvery: the connection stalls silently (default 15 s) for
	// StallFor (default 40 s): it sends nothing, answers no ping and sends
	// none, and no other chaos happens to it; what is published meanwhile
	// is lost. One connection at a time stalls (the others wait their next
	// turn).
	StallEvery time.Duration
	StallFor   time.Duration
	// FloodEvery: FloodFrames small frames (default 50,000) are sent within
	// FloodWithin (default 1 s) (default every 10 s). They are events of
	// an unknown type on a subscribed stream.
	FloodEvery  time.Duration
	FloodFrames int
	FloodWithin time.Duration
	// BigEvery: a big message (default every 8 s) of one of BigSizes bytes,
	// drawn (default 2 MiB or 16 MiB): a valid JSON event of an unknown type.
	BigEvery time.Duration
	BigSizes []int
	// GarbageEvery: a garbage frame (default every 500 ms): truncated JSON,
	// wrong field types (a kline event among them), HTML, random bytes, in a
	// drawn order.
	GarbageEvery time.Duration
	// ReplayEvery: on a connection with kline streams, the final (x:true)
	// of a bar that closed 1 to 3 bars ago is sent again with other prices
	// and volume (default every 2 s): a conflict.
	ReplayEvery time.Duration
	// ResendEvery: on a connection with kline streams, an in-progress
	// update (x:false, a lower high, another close, less volume) of a bar
	// that closed 1 to 3 bars ago is sent again (default every 1 s).
	ResendEvery time.Duration
}

// Default chaos knobs.
const (
	DefaultChaosDropEvery    = 4 * time.Second
	DefaultChaosStallEvery   = 15 * time.Second
	DefaultChaosStallFor     = 40 * time.Second
	DefaultChaosFloodEvery   = 10 * time.Second
	DefaultChaosFloodFrames  = 50_000
	DefaultChaosFloodWithin  = time.Second
	DefaultChaosBigEvery     = 8 * time.Second
	DefaultChaosGarbageEvery = 500 * time.Millisecond
	DefaultChaosReplayEvery  = 2 * time.Second
	DefaultChaosResendEvery  = time.Second
)

func (c Chaos) withDefaults() Chaos {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DropEvery, DefaultChaosDropEvery)
	def(&c.StallEvery, DefaultChaosStallEvery)
	def(&c.StallFor, DefaultChaosStallFor)
	def(&c.FloodEvery, DefaultChaosFloodEvery)
	def(&c.FloodWithin, DefaultChaosFloodWithin)
	def(&c.BigEvery, DefaultChaosBigEvery)
	def(&c.GarbageEvery, DefaultChaosGarbageEvery)
	def(&c.ReplayEvery, DefaultChaosReplayEvery)
	def(&c.ResendEvery, DefaultChaosResendEvery)
	if c.FloodFrames <= 0 {
		c.FloodFrames = DefaultChaosFloodFrames
	}
	if len(c.BigSizes) == 0 {
		c.BigSizes = []int{2 << 20, 16 << 20}
	}
	c.BigSizes = slices.Clone(c.BigSizes)
	return c
}

// chaos knob names, as ParseChaos and POST /sim/fault?mode=chaos take them.
var chaosKnobs = []string{"seed", "drop", "stall", "stallFor", "flood", "floodFrames", "floodWithin", "big", "bigSizes", "garbage", "replay", "resend"}

// ParseChaos reads chaos knobs from "key=value,key=value" over base:
// seed=N, drop=, stall=, stallFor=, flood=, floodWithin=, big=, garbage=,
// replay=, resend= (Go durations; "off" for never), floodFrames=N and
// bigSizes=N/N (bytes). An empty spec is base.
func ParseChaos(spec string, base Chaos) (Chaos, error) {
	q := url.Values{}
	for kv := range strings.SplitSeq(spec, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return base, fmt.Errorf("sim: chaos knob %q: want key=value", kv)
		}
		q.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	for k := range q {
		if !slices.Contains(chaosKnobs, k) {
			return base, fmt.Errorf("sim: unknown chaos knob %q (want %s)", k, strings.Join(chaosKnobs, ", "))
		}
	}
	return chaosFrom(q, base)
}

// chaosFrom reads the chaos knobs present in q over base.
func chaosFrom(q url.Values, base Chaos) (Chaos, error) {
	c := base
	c.BigSizes = slices.Clone(base.BigSizes)
	durs := map[string]*time.Duration{"drop": &c.DropEvery, "stall": &c.StallEvery, "stallFor": &c.StallFor, "flood": &c.FloodEvery,
		"floodWithin": &c.FloodWithin, "big": &c.BigEvery, "garbage": &c.GarbageEvery, "replay": &c.ReplayEvery, "resend": &c.ResendEvery}
	for name, d := range durs {
		v := q.Get(name)
		switch v {
		case "":
			continue
		case "off", "never":
			*d = -1
			continue
		}
		x, err := time.ParseDuration(v)
		if err != nil || x <= 0 {
			return base, fmt.Errorf("sim: chaos %s=%q: want a positive duration or off", name, v)
		}
		*d = x
	}
	if v := q.Get("seed"); v != "" {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return base, fmt.Errorf("sim: chaos seed=%q: want an integer", v)
		}
		c.Seed = x
	}
	if v := q.Get("floodFrames"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x <= 0 {
			return base, fmt.Errorf("sim: chaos floodFrames=%q: want a positive integer", v)
		}
		c.FloodFrames = x
	}
	if v := q.Get("bigSizes"); v != "" {
		c.BigSizes = nil
		for s := range strings.SplitSeq(v, "/") {
			x, err := strconv.Atoi(s)
			if err != nil || x < 64 || x > 64<<20 {
				return base, fmt.Errorf("sim: chaos bigSizes=%q: want sizes in bytes, 64 to 64 MiB, separated by /", v)
			}
			c.BigSizes = append(c.BigSizes, x)
		}
	}
	return c, nil
}

// What chaos does, as ChaosStats counts it.
const (
	chaosClose1001 = iota
	chaosClose1008
	chaosReset
	chaosFIN
	chaosStall
	chaosFlood
	chaosBig
	chaosGarbage
	chaosReplay
	chaosResend
	numChaos
)

var chaosNames = [numChaos]string{"close1001", "close1008", "reset", "fin", "stall", "flood", "big", "garbage", "replay", "resend"}

// The scheduled kinds: a drop is one of the first four, drawn.
const (
	schedDrop = iota
	schedStall
	schedFlood
	schedBig
	schedGarbage
	schedReplay
	schedResend
	numSched
)

// chaosRun is one FaultChaos: its knobs, the connections it schedules and
// what it did.
type chaosRun struct {
	cfg   Chaos
	gen   uint64
	means [numSched]time.Duration
	count [numChaos]atomic.Int64

	// Driver goroutine only.
	conns      map[*client]*connChaos
	stallUntil time.Time // a connection is stalled until then
}

func newChaosRun(cfg Chaos, gen uint64) *chaosRun {
	cfg = cfg.withDefaults()
	r := &chaosRun{cfg: cfg, gen: gen, conns: map[*client]*connChaos{}}
	r.means = [numSched]time.Duration{cfg.DropEvery, cfg.StallEvery, cfg.FloodEvery, cfg.BigEvery, cfg.GarbageEvery, cfg.ReplayEvery, cfg.ResendEvery}
	return r
}

// connChaos is one connection's schedule: per kind, its own random stream
// (seed, connection number, kind) and the time of its next event.
type connChaos struct {
	rng  [numSched]*rand.Rand
	next [numSched]time.Time
}

func (r *chaosRun) schedule(c *client, now time.Time) *connChaos {
	cc := &connChaos{}
	for k := range numSched {
		cc.rng[k] = rand.New(rand.NewPCG(uint64(r.cfg.Seed), c.seq<<8|uint64(k)))
		cc.next[k] = r.after(cc, k, now)
	}
	return cc
}

// after returns the time of the next event of kind k after now.
func (r *chaosRun) after(cc *connChaos, k int, now time.Time) time.Time {
	m := r.means[k]
	if m <= 0 {
		return time.Time{} // never
	}
	d := time.Duration(-math.Log(1-cc.rng[k].Float64()) * float64(m))
	return now.Add(max(d, time.Millisecond))
}

// chaosTick is how often the chaos driver looks at the schedules.
const chaosTick = 10 * time.Millisecond

// driveChaos runs the schedules of FaultChaos while it is in force, until
// ctx ends.
func (s *Server) driveChaos(ctx context.Context) {
	t := time.NewTicker(chaosTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if r := s.fault.snapshot().chaos; r != nil {
				s.chaosStep(r, now)
			}
		}
	}
}

// chaosStep does what is due on every connection.
func (s *Server) chaosStep(r *chaosRun, now time.Time) {
	s.hub.mu.RLock()
	var cs []*client
	for c := range s.hub.clients {
		if c.conn != nil && !c.closing.Load() {
			cs = append(cs, c)
		}
	}
	s.hub.mu.RUnlock()
	slices.SortFunc(cs, func(a, b *client) int { return int(a.seq) - int(b.seq) })
	live := make(map[*client]bool, len(cs))
	for _, c := range cs {
		live[c] = true
		cc := r.conns[c]
		if cc == nil {
			cc = r.schedule(c, now)
			r.conns[c] = cc
		}
		// A stalled connection does nothing at all until its stall ends:
		// its events are put off.
		stalled := c.stallGen.Load() == r.gen && now.UnixNano() < c.stallUntil.Load()
		for k := range numSched {
			if cc.next[k].IsZero() || now.Before(cc.next[k]) || c.closing.Load() {
				continue
			}
			cc.next[k] = r.after(cc, k, now)
			if !stalled {
				s.chaosDo(r, c, cc, k, now)
			}
		}
	}
	for c := range r.conns {
		if !live[c] {
			delete(r.conns, c)
		}
	}
}

// chaosDo does one scheduled event of kind k on c.
func (s *Server) chaosDo(r *chaosRun, c *client, cc *connChaos, k int, now time.Time) {
	rng := cc.rng[k]
	comb := c.combined.Load()
	switch k {
	case schedDrop:
		kind := rng.IntN(4)
		r.count[kind].Add(1)
		c.chaosDrop(kind)
	case schedStall:
		if now.Before(r.stallUntil) {
			return // another connection is stalled
		}
		r.stallUntil = now.Add(r.cfg.StallFor)
		c.stallGen.Store(r.gen)
		c.stallUntil.Store(r.stallUntil.UnixNano())
		r.count[chaosStall].Add(1)
	case schedFlood:
		select {
		case c.chaosQ <- chaosAct{flood: r.cfg.FloodFrames, within: r.cfg.FloodWithin, stream: c.chaosStream()}:
			r.count[chaosFlood].Add(1)
		default: // a flood is still going on
		}
	case schedBig:
		size := r.cfg.BigSizes[rng.IntN(len(r.cfg.BigSizes))]
		if c.enqueue(bigFrame(c.chaosStream(), comb, size, s.nowMs())) {
			r.count[chaosBig].Add(1)
		}
	case schedGarbage:
		if c.enqueue(garbageFrame(rng, c.chaosStream(), comb, s.nowMs())) {
			r.count[chaosGarbage].Add(1)
		}
	case schedReplay, schedResend:
		t := c.chaosKline(rng)
		if t == nil {
			return
		}
		at := s.nowMs()
		open := t.iv.back(t.iv.open(at), 1+rng.IntN(3))
		var ko klineOut
		kind := chaosResend
		if k == schedReplay {
			ko, kind = t.sym.forged(t.iv, open, at, rng), chaosReplay
		} else {
			ko = t.sym.inProgress(t.iv, open, rng)
		}
		if c.enqueue(newMsg(t.name, t.sym.name, at, ko.event(at)).frame(comb, variantPlain)) {
			r.count[kind].Add(1)
		}
	}
}

// chaosDrop drops c in one of the four ways.
func (c *client) chaosDrop(kind int) {
	switch kind {
	case chaosClose1001:
		c.requestClose(websocket.StatusGoingAway, "chaos: going away", false)
	case chaosClose1008:
		c.requestClose(websocket.StatusPolicyViolation, "chaos: policy violation", false)
	case chaosReset:
		if c.closing.CompareAndSwap(false, true) {
			if tc, ok := c.raw.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // the close sends RST
			}
			_ = c.raw.Close()
		}
	case chaosFIN:
		if c.closing.CompareAndSwap(false, true) {
			if tc, ok := c.raw.(*net.TCPConn); ok {
				_ = tc.CloseWrite() // FIN; no close frame
				return
			}
			_ = c.raw.Close()
		}
	}
}

// stalled reports whether c is in a chaos stall now (f is the fault in
// force: the stall ends with the chaos that started it).
func (c *client) stalled(f faultSnap) bool {
	return f.chaos != nil && c.stallGen.Load() == f.gen && time.Now().UnixNano() < c.stallUntil.Load()
}

// chaosStream names the stream chaos frames claim to be on.
func (c *client) chaosStream() string {
	c.s.hub.mu.RLock()
	defer c.s.hub.mu.RUnlock()
	return c.firstSub()
}

// chaosKline returns one of c's deliverable kline streams, drawn; nil if
// it has none.
func (c *client) chaosKline(rng *rand.Rand) *topic {
	c.s.hub.mu.RLock()
	defer c.s.hub.mu.RUnlock()
	var ts []*topic
	for _, name := range c.subs {
		if tp := c.s.hub.topics[name]; tp != nil && tp.kind == kindKline {
			if _, ok := tp.subs[c]; ok {
				ts = append(ts, tp)
			}
		}
	}
	if len(ts) == 0 {
		return nil
	}
	t := *ts[rng.IntN(len(ts))]
	t.subs = nil
	return &t
}

// chaosAct is work chaos gives a connection's writer: a flood of small
// frames, written directly (the queue could not hold them).
type chaosAct struct {
	flood  int
	within time.Duration
	stream string
}

// chaosFlood writes a.flood small frames, spread over a.within. It
// reports false when the connection failed.
func (c *client) chaosFlood(ctx context.Context, a chaosAct) bool {
	const step = 10 * time.Millisecond
	steps := max(int(a.within/step), 1)
	comb := c.combined.Load()
	name, _ := json.Marshal(a.stream)
	start := time.Now()
	sent := 0
	for i := 1; i <= steps; i++ {
		for ; sent < a.flood*i/steps; sent++ {
			var b bytes.Buffer
			if comb {
				b.WriteString(`{"stream":` + string(name) + `,"data":`)
			}
			b.WriteString(`{"e":"simFlood","E":` + strconv.FormatInt(c.s.nowMs(), 10) + `,"n":` + strconv.Itoa(sent) + `}`)
			if comb {
				b.WriteByte('}')
			}
			if !c.write(ctx, b.Bytes()) {
				return false
			}
		}
		if d := time.Until(start.Add(time.Duration(i) * step)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
	}
	return true
}

// bigFrame is a valid JSON event of an unknown type, size bytes long.
func bigFrame(stream string, combined bool, size int, now int64) []byte {
	name, _ := json.Marshal(stream)
	var b bytes.Buffer
	b.Grow(size + 256)
	if combined {
		b.WriteString(`{"stream":` + string(name) + `,"data":`)
	}
	b.WriteString(`{"e":"simBig","E":` + strconv.FormatInt(now, 10) + `,"pad":"`)
	tail := 2
	if combined {
		tail++
	}
	b.Write(bytes.Repeat([]byte{'x'}, max(size-b.Len()-tail, 0)))
	b.WriteString(`"}`)
	if combined {
		b.WriteByte('}')
	}
	return b.Bytes()
}

// garbageFrame is one frame no client can use, drawn: truncated JSON, a
// kline event with wrong types or without its fields, HTML, random bytes,
// or the wrong JSON type.
func garbageFrame(rng *rand.Rand, stream string, combined bool, now int64) []byte {
	e := strconv.FormatInt(now, 10)
	var data string
	switch rng.IntN(6) {
	case 0:
		f := `{"stream":"` + stream + `","data":{"e":"kline","E":` + e + `,"s":"BTCUSDT","k":{"t":` + e
		return []byte(f[:1+rng.IntN(len(f)-1)])
	case 1:
		data = `{"e":"kline","E":"` + e + `","s":7,"k":{"t":"soon","T":[],"s":null,"i":1,"o":{},"x":"yes"}}`
	case 2:
		data = `{"e":"kline","E":` + e + `,"s":"BTCUSDT","k":{}}`
	case 3:
		return []byte(`<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>`)
	case 4:
		b := make([]byte, 16+rng.IntN(240))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	default:
		data = []string{`"unexpected string payload"`, `[]`, `null`, `42`}[rng.IntN(4)]
	}
	if combined {
		return envelope(stream, []byte(data))
	}
	return []byte(data)
}

// forged is bar open of iv, closed at now, with another close (moved by
// 1 to 5 ticks), the high or low it implies, and more volume.
func (sy *symbol) forged(iv interval, open, now int64, rng *rand.Rand) klineOut {
	b, _ := sy.kline(iv, open, now)
	t := sy.spec.tickU
	d := int64(1+rng.IntN(5)) * t
	if rng.IntN(2) == 0 {
		d = -d
	}
	b.close = max(b.close+d, t)
	b.high, b.low = max(b.high, b.close), min(b.low, b.close)
	extra := 1 + rng.Int64N(max(b.vol/10, 1))
	b.vol += extra
	b.quote += extra * b.close
	return sy.klineOf(iv, open, b, true)
}

// inProgress is bar open of iv as it stood at a drawn time before its
// close: an in-progress update (x:false).
func (sy *symbol) inProgress(iv interval, open int64, rng *rand.Rand) klineOut {
	length := iv.next(open) - open
	at := open + rng.Int64N(max(length-1000, 1))
	return sy.klineOf(iv, open, sy.upTo(open/minuteMs, at), false)
}

// initChaos puts Config.Chaos in force from the start.
func (s *Server) initChaos() {
	if s.cfg.Chaos == nil {
		return
	}
	s.fault.gen++
	s.fault.mode = FaultChaos
	s.fault.chaos = newChaosRun(*s.cfg.Chaos, s.fault.gen)
	s.fault.lastChaos = s.fault.chaos
}

// ChaosStats counts what FaultChaos did, by kind (close1001, close1008,
// reset, fin, stall, flood, big, garbage, replay, resend): the one in force,
// or the last one. Empty if there was none.
func (s *Server) ChaosStats() map[string]int64 {
	s.fault.mu.Lock()
	r := s.fault.lastChaos
	s.fault.mu.Unlock()
	out := map[string]int64{}
	if r == nil {
		return out
	}
	for i, name := range chaosNames {
		out[name] = r.count[i].Load()
	}
	return out
}

// chaosRoutes adds the chaos and ground-truth controls (no weight).
func (s *Server) chaosRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /sim/chaos", func(w http.ResponseWriter, _ *http.Request) {
		f := s.fault.snapshot()
		s.fault.mu.Lock()
		r := s.fault.lastChaos
		s.fault.mu.Unlock()
		out := map[string]any{"active": f.chaos != nil, "counts": s.ChaosStats()}
		if r != nil {
			out["config"] = chaosJSON(r.cfg)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /sim/truth/klines", s.handleTruth)
}

func chaosJSON(c Chaos) map[string]any {
	d := func(v time.Duration) string {
		if v < 0 {
			return "off"
		}
		return v.String()
	}
	return map[string]any{"seed": c.Seed, "drop": d(c.DropEvery), "stall": d(c.StallEvery), "stallFor": d(c.StallFor),
		"flood": d(c.FloodEvery), "floodFrames": c.FloodFrames, "floodWithin": d(c.FloodWithin), "big": d(c.BigEvery),
		"bigSizes": c.BigSizes, "garbage": d(c.GarbageEvery), "replay": d(c.ReplayEvery), "resend": d(c.ResendEvery)}
}

// faultFromQuery builds a Fault of POST /sim/fault: for chaos, the knobs
// in the query over Config.Chaos's (or the defaults).
func (s *Server) faultFromQuery(q url.Values, mode FaultMode, d time.Duration) (Fault, error) {
	f := Fault{Mode: mode, Duration: d}
	if mode != FaultChaos {
		return f, nil
	}
	var base Chaos
	if s.cfg.Chaos != nil {
		base = *s.cfg.Chaos
	}
	c, err := chaosFrom(q, base)
	if err != nil {
		return f, err
	}
	f.Chaos = &c
	return f, nil
}
