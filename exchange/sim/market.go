package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// The price model.
//
// The log price at each minute boundary m (minutes since the Unix epoch) is
// a sum of octaves of seeded value noise: octave k has cells of 2^k minutes
// and an amplitude ∝ √(2^k), which gives random-walk-like statistics at every
// scale while staying a pure function of (seed, symbol, m). A 1m bar opens at
// the price of its start boundary and closes at the price of its end
// boundary; its high/low excursions, volume and trade count are hashed from
// (seed, symbol, m). Within the minute a per-second path (also hashed) starts
// at the open, touches the high and the low once each and ends at the close,
// so the still-open bar at second s is a prefix of the final bar and its
// state at second 59 is exactly the closed bar. Every longer interval is the
// aggregation of its 1m bars (whole UTC days are memoised).
//
// Prices and quantities are integers in units of 10^-pricePrecision and
// 10^-quantityPrecision, quote volumes in their product, so aggregation is
// exact and nothing is rounded twice.

const (
	octaves    = 18 // largest cell 2^17 minutes (~91 days)
	dayMinutes = 1440
	maxTrades  = 9999 // per minute; trade ids are minute*10000 + i
	maxDayMemo = 20000

	tagNoise  = 1 << 56
	tagMinute = 2 << 56
	tagPath   = 3 << 56
	tagBook   = 4 << 56
	tagQty    = 5 << 56
)

var invCell = func() (v [octaves]float64) {
	for k := range v {
		v[k] = 1 / float64(int64(1)<<k)
	}
	return v
}()

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// symbolSpec is what is known of a symbol before the seed is applied.
type symbolSpec struct {
	price       float64 // starting level
	pp, qp      int     // price / quantity decimals
	tickU       int64   // tick size in units of 10^-pp
	sigma       float64 // per-minute log volatility
	quotePerMin float64 // mean quote volume per minute
	minNotional string
	maxQty      string
	maxMktQty   string
}

// knownSymbols carry Binance's real precisions and tick sizes; any other
// well-formed symbol gets a seeded price level and derived precisions.
var knownSymbols = map[string]symbolSpec{
	"BTCUSDT":  {85000, 2, 3, 10, 0.0007, 8e6, "100", "1000", "120"},
	"ETHUSDT":  {3200, 2, 3, 1, 0.0009, 5e6, "20", "10000", "2000"},
	"BNBUSDT":  {600, 3, 2, 10, 0.0008, 4e5, "5", "100000", "2000"},
	"SOLUSDT":  {150, 4, 2, 100, 0.0011, 1.5e6, "5", "1000000", "5000"},
	"XRPUSDT":  {0.6, 4, 1, 1, 0.0010, 1e6, "5", "10000000", "2000000"},
	"DOGEUSDT": {0.15, 6, 0, 10, 0.0012, 6e5, "5", "50000000", "30000000"},
}

var symbolRE = regexp.MustCompile(`^[A-Z0-9]{2,16}(USDT|USDC)$`)

// symbol is one simulated perpetual contract.
type symbol struct {
	name, lower, base, quote string
	idx                      int
	spec                     symbolSpec
	key                      uint64
	logBase                  float64 // log of the price level in price units
	amp                      [octaves]float64
	volPerMin                float64 // mean base volume per minute, qty units
	qtyPerTrade              float64

	mu   sync.Mutex
	days map[int64]bar
}

func mix(x uint64) uint64 { // splitmix64
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func (sy *symbol) hash(tag, v uint64) uint64 { return mix(sy.key ^ mix(tag^mix(v))) }

func newSymbol(name string, idx int, seed int64) (*symbol, error) {
	m := symbolRE.FindStringSubmatch(name)
	if m == nil {
		return nil, fmt.Errorf("sim: invalid symbol %q (want upper-case letters/digits ending in USDT or USDC)", name)
	}
	f := fnv.New64a()
	f.Write([]byte(name))
	sy := &symbol{
		name:  name,
		lower: strings.ToLower(name),
		quote: m[1],
		base:  strings.TrimSuffix(name, m[1]),
		idx:   idx,
		key:   mix(uint64(seed) ^ f.Sum64()),
		days:  map[int64]bar{},
	}
	spec, ok := knownSymbols[name]
	if !ok {
		// Seeded level between 0.01 and 2000, log-uniform.
		p := math.Exp(math.Log(0.01) + unit(sy.hash(0, 0))*(math.Log(2000)-math.Log(0.01)))
		mag := int(math.Floor(math.Log10(p)))
		spec = symbolSpec{
			price:       p,
			pp:          min(max(4-mag, 0), 6),
			qp:          min(max(mag, 0), 3),
			tickU:       1,
			sigma:       0.0010 + 0.0006*unit(sy.hash(0, 1)),
			quotePerMin: 2e5 + 6e5*unit(sy.hash(0, 2)),
			minNotional: "5",
			maxQty:      "1000000",
			maxMktQty:   "100000",
		}
	}
	if spec.pp+spec.qp > moneyDec {
		return nil, fmt.Errorf("sim: symbol %q: price and quantity precision above %d decimals", name, moneyDec)
	}
	sy.spec = spec
	sy.logBase = math.Log(spec.price * pow10[spec.pp])
	for k := range sy.amp {
		sy.amp[k] = spec.sigma * math.Sqrt(float64(int64(1)<<k)) * 0.55
	}
	sy.volPerMin = spec.quotePerMin / spec.price * pow10[spec.qp]
	sy.qtyPerTrade = sy.volPerMin / 1500
	return sy, nil
}

// bar is OHLCV in integer units. trades == 0 means empty.
type bar struct {
	open, high, low, close int64
	vol, quote             int64
	tbVol, tbQuote         int64
	trades                 int64
	firstID, lastID        int64
}

// merge appends o, which follows b in time.
func (b *bar) merge(o bar) {
	if o.trades == 0 {
		return
	}
	if b.trades == 0 {
		*b = o
		return
	}
	b.high = max(b.high, o.high)
	b.low = min(b.low, o.low)
	b.close = o.close
	b.vol += o.vol
	b.quote += o.quote
	b.tbVol += o.tbVol
	b.tbQuote += o.tbQuote
	b.trades += o.trades
	b.lastID = o.lastID
}

// walker evaluates the log price at consecutive minute boundaries, reusing
// each octave's cell values while the cell does not change. Every evaluation
// goes through at, so the result does not depend on the walk's origin.
type walker struct {
	sy   *symbol
	ok   [octaves]bool
	cell [octaves]int64
	a, b [octaves]float64
}

func (w *walker) noise(k int, c int64) float64 {
	return 2*unit(w.sy.hash(tagNoise|uint64(k), uint64(c))) - 1
}

func (w *walker) at(m int64) float64 {
	sum := w.sy.logBase
	for k := range octaves {
		c := m >> k
		if !w.ok[k] || c != w.cell[k] {
			if w.ok[k] && c == w.cell[k]+1 {
				w.a[k] = w.b[k]
			} else {
				w.a[k] = w.noise(k, c)
			}
			w.b[k] = w.noise(k, c+1)
			w.cell[k], w.ok[k] = c, true
		}
		f := float64(m-c<<k) * invCell[k]
		s := f * f * (3 - 2*f)
		sum += w.sy.amp[k] * (w.a[k] + (w.b[k]-w.a[k])*s)
	}
	return sum
}

// price rounds a log price to a tick multiple (price units).
func (sy *symbol) price(logp float64) int64 {
	t := sy.spec.tickU
	v := int64(math.Round(math.Exp(logp)/float64(t))) * t
	return max(v, t)
}

// minute returns the complete 1m bar m, whose boundary prices are p0, p1.
func (sy *symbol) minute(m int64, p0, p1 int64) bar {
	r := sy.hash(tagMinute, uint64(m))
	u := func(i uint64) float64 { return unit(mix(r + i)) }
	t := sy.spec.tickU
	o, c := p0, p1
	ref := float64(o)
	exc := func(x float64) int64 { return int64(x*x*ref*sy.spec.sigma*1.5/float64(t)) * t }
	h := max(o, c) + exc(u(1))
	l := max(min(o, c)-exc(u(2)), t)
	move := math.Abs(float64(c-o)) / ref / sy.spec.sigma
	vol := max(int64(sy.volPerMin*(0.3+1.4*u(3))*(1+min(move, 6)*0.3)), 1)
	vwap := (o + h + l + c) / 4
	tb := int64(float64(vol) * (0.35 + 0.3*u(4)))
	trades := min(max(int64(float64(vol)/sy.qtyPerTrade*(0.8+0.4*u(5))), 1), maxTrades)
	id := m * (maxTrades + 1)
	return bar{
		open: o, high: h, low: l, close: c,
		vol: vol, quote: vol * vwap, tbVol: tb, tbQuote: tb * vwap,
		trades: trades, firstID: id, lastID: id + trades - 1,
	}
}

// aggMinutes aggregates the complete 1m bars [m0, m1).
func (sy *symbol) aggMinutes(m0, m1 int64) bar {
	w := walker{sy: sy}
	var out bar
	p := sy.price(w.at(m0))
	for m := m0; m < m1; m++ {
		pn := sy.price(w.at(m + 1))
		out.merge(sy.minute(m, p, pn))
		p = pn
	}
	return out
}

// day returns the memoised aggregate of UTC day d.
func (sy *symbol) day(d int64) bar {
	sy.mu.Lock()
	b, ok := sy.days[d]
	sy.mu.Unlock()
	if ok {
		return b
	}
	b = sy.aggMinutes(d*dayMinutes, (d+1)*dayMinutes)
	sy.mu.Lock()
	if len(sy.days) >= maxDayMemo {
		clear(sy.days)
	}
	sy.days[d] = b
	sy.mu.Unlock()
	return b
}

// agg aggregates the complete 1m bars [m0, m1).
func (sy *symbol) agg(m0, m1 int64) bar {
	var out bar
	for m := m0; m < m1; {
		if m%dayMinutes == 0 && m+dayMinutes <= m1 {
			out.merge(sy.day(m / dayMinutes))
			m += dayMinutes
			continue
		}
		e := min(m1, (m/dayMinutes+1)*dayMinutes)
		out.merge(sy.aggMinutes(m, e))
		m = e
	}
	return out
}

// path returns the per-second prices of minute m (whose complete bar is
// full) and the cumulative per-second activity weights.
func (sy *symbol) path(m int64, full bar) (px, cw [60]int64) {
	r := sy.hash(tagPath, uint64(m))
	th := 1 + int64(mix(r+1)%58)
	tl := 1 + int64(mix(r+2)%57)
	if tl >= th {
		tl++
	}
	type pt struct{ t, v int64 }
	pts := []pt{{0, full.open}, {th, full.high}, {tl, full.low}, {59, full.close}}
	if tl < th {
		pts[1], pts[2] = pts[2], pts[1]
	}
	t := sy.spec.tickU
	span := float64(full.high - full.low)
	seg := 0
	var acc int64
	for j := range int64(60) {
		for pts[seg+1].t < j {
			seg++
		}
		a, b := pts[seg], pts[seg+1]
		var v int64
		switch j {
		case a.t:
			v = a.v
		case b.t:
			v = b.v
		default:
			lin := float64(a.v) + float64(b.v-a.v)*float64(j-a.t)/float64(b.t-a.t)
			lin += (unit(mix(r+10+uint64(j))) - 0.5) * span * 0.25
			v = int64(math.Round(lin/float64(t))) * t
			v = min(max(v, full.low), full.high)
		}
		px[j] = v
		acc += 1 + int64(mix(r+100+uint64(j))%8)
		cw[j] = acc
	}
	return px, cw
}

// partial returns minute m as it stands at second s (0..59). At s == 59 it
// is the complete bar.
func (sy *symbol) partial(m int64, s int) bar {
	full := sy.aggMinutes(m, m+1)
	px, cw := sy.path(m, full)
	b := full
	b.close = px[s]
	b.high, b.low = px[0], px[0]
	for _, v := range px[1 : s+1] {
		b.high = max(b.high, v)
		b.low = min(b.low, v)
	}
	f, tot := cw[s], cw[59]
	b.vol = full.vol * f / tot
	b.quote = full.quote * f / tot
	b.tbVol = full.tbVol * f / tot
	b.tbQuote = full.tbQuote * f / tot
	b.trades = max(full.trades*f/tot, 1)
	b.lastID = b.firstID + b.trades - 1
	return b
}

// splitMs splits a sim time into its minute and second-of-minute.
func splitMs(t int64) (m int64, s int) {
	return t / minuteMs, int(t % minuteMs / 1000)
}

// upTo aggregates from minute m0 to sim time now (the current minute
// partial).
func (sy *symbol) upTo(m0, now int64) bar {
	m, s := splitMs(now)
	b := sy.agg(m0, m)
	b.merge(sy.partial(m, s))
	return b
}

// kline returns the bar of iv opening at open as it stands at now, and
// whether it is closed.
func (sy *symbol) kline(iv interval, open, now int64) (bar, bool) {
	next := iv.next(open)
	if next <= now {
		return sy.agg(open/minuteMs, next/minuteMs), true
	}
	return sy.upTo(open/minuteMs, now), false
}

// rolling24h returns the statistics of the 1440 minutes ending at now.
func (sy *symbol) rolling24h(now int64) bar {
	m, _ := splitMs(now)
	return sy.upTo(m-dayMinutes+1, now)
}

// lastPrice returns the trade price at now.
func (sy *symbol) lastPrice(now int64) int64 {
	m, s := splitMs(now)
	px, _ := sy.path(m, sy.aggMinutes(m, m+1))
	return px[s]
}

// lastQty is the size of the last trade at now (qty units).
func (sy *symbol) lastQty(now int64) int64 {
	return max(int64(sy.qtyPerTrade*3*unit(sy.hash(tagQty, uint64(now/1000)))), 1)
}

// book returns the best bid/ask and their sizes at now.
func (sy *symbol) book(now int64) (bid, bidQty, ask, askQty int64) {
	p := sy.lastPrice(now)
	r := sy.hash(tagBook, uint64(now/100))
	t := sy.spec.tickU
	bid = max(p-int64(mix(r+1)%2)*t, t)
	spread := int64(1)
	if mix(r+2)%5 == 0 {
		spread = 2
	}
	ask = bid + spread*t
	q := func(i uint64) int64 { return max(int64(sy.volPerMin/20*(0.05+3*unit(mix(r+i)))), 1) }
	return bid, q(3), ask, q(4)
}

// fmtUnits formats v·10^-dec as a decimal string.
func fmtUnits(v int64, dec int) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := strconv.FormatInt(v, 10)
	if dec > 0 {
		if len(s) <= dec {
			s = strings.Repeat("0", dec-len(s)+1) + s
		}
		s = s[:len(s)-dec] + "." + s[len(s)-dec:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func (sy *symbol) px(v int64) string  { return fmtUnits(v, sy.spec.pp) }
func (sy *symbol) qty(v int64) string { return fmtUnits(v, sy.spec.qp) }
func (sy *symbol) quoteAmt(v int64) string {
	return fmtUnits(v, sy.spec.pp+sy.spec.qp)
}
