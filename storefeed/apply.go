package storefeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/store"
)

// maxBeats bounds the nodes whose heartbeats are remembered.
const maxBeats = 64

// handle applies one frame; it reports whether the frame was the node's
// acknowledgement of the subscription.
func (f *Feeder) handle(b []byte) (subscribed bool) {
	ev, err := bus.Decode(b)
	if err != nil {
		var ctl struct {
			Type  string `json:"type"`
			Error string `json:"error"`
		}
		switch {
		case json.Unmarshal(b, &ctl) != nil || ctl.Type == "":
			f.stats.malformed.Add(1)
		case ctl.Type == "subscribed":
			return true
		case ctl.Type == "error":
			f.cfg.Logger.Warn("storefeed: the node refused a message", "error", ctl.Error)
		}
		return false
	}
	name, ok := strings.CutPrefix(ev.Name, f.cfg.Mode+".")
	if !ok {
		f.stats.ignored.Add(1)
		return false
	}
	var res result
	switch name {
	case "kline":
		res = f.onKline(ev.Data)
	case "ticker":
		res = f.onTicker(ev.Data)
	case "positions":
		res = f.onPositions(ev.Data)
	case "balance":
		res = f.onBalances(ev.Data)
	case "account_snapshot":
		res = f.onSnapshot(ev.Data)
	case "orders":
		res = f.onOrder(ev.Data)
	case "info_log", "error_log":
		res = f.onLog(name == "error_log", ev.Data)
	case "heartbeat":
		f.stats.heartbeats.Add(1)
		res = f.onHeartbeat(ev.Data)
	case "cache_tier":
		res = f.onCacheTier(ev.Data)
	default:
		res = ignored
	}
	switch res {
	case applied:
		f.stats.applied.Add(1)
		f.stats.lastEvent.Store(time.Now().UnixNano())
	case stale:
		f.stats.stale.Add(1)
	case ignored:
		f.stats.ignored.Add(1)
	case malformed:
		f.stats.malformed.Add(1)
	}
	return false
}

// result is what became of an event.
type result int

const (
	applied result = iota
	stale
	ignored
	malformed
	noted // a heartbeat or tier change: read, nothing to store
)

func num(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

// candleOf converts a kline to the Store's row.
func candleOf(k exchange.Kline) (store.Candle, error) {
	var c store.Candle
	c[store.ColTimestamp] = float64(k.OpenTime)
	for col, s := range map[int]string{store.ColOpen: k.Open, store.ColClose: k.Close, store.ColHigh: k.High, store.ColLow: k.Low, store.ColVolume: k.Volume} {
		v, err := num(s)
		if err != nil {
			return c, fmt.Errorf("kline %s %s %d: %w", k.Symbol, k.Interval, k.OpenTime, err)
		}
		c[col] = v
	}
	return c, nil
}

func (f *Feeder) onKline(data json.RawMessage) result {
	var k exchange.Kline
	if err := json.Unmarshal(data, &k); err != nil {
		return malformed
	}
	s := f.series[seriesKey{k.Symbol, k.Interval}]
	if s == nil {
		return ignored
	}
	if s.newest != 0 && k.OpenTime > s.newest+s.tf {
		// Klines were published that never reached us.
		f.stats.gaps.Add(1)
		f.resyncAll(fmt.Sprintf("gap in %s %s: %d after %d", k.Symbol, k.Interval, k.OpenTime, s.newest))
	}
	res := f.applyKline(s, k)
	if res == applied && k.Closed && f.cfg.OnClosed != nil {
		f.cfg.OnClosed(k.Symbol, k.Interval, k.OpenTime)
	}
	return res
}

// applyKline writes k into the Store unless it is older than what the
// Store holds: a forming kline behind the newest one, or behind the
// same candle's newer state (closed, or more trades).
func (f *Feeder) applyKline(s *series, k exchange.Kline) result {
	c, err := candleOf(k)
	if err != nil {
		return malformed
	}
	switch {
	case k.OpenTime < s.newest && !k.Closed:
		return stale
	case k.OpenTime == s.newest && !k.Closed && (s.closed || k.Trades < s.trades):
		return stale
	}
	if err := f.st.AddCandle(f.cfg.Exchange, s.symbol, s.interval, c); err != nil {
		if errors.Is(err, store.ErrTooOld) {
			return stale
		}
		return malformed
	}
	if k.OpenTime >= s.newest {
		s.newest, s.closed, s.trades = k.OpenTime, k.Closed, k.Trades
		if s.smallest {
			f.price(s.symbol, c[store.ColClose], k.CloseTime)
		}
	}
	return applied
}

// price records the last price of a symbol and sets it on its position.
func (f *Feeder) price(symbol string, p float64, ts int64) {
	f.lastPrice[symbol] = p
	if pos, ok := f.st.Position(f.cfg.Exchange, symbol); ok && pos.IsOpen() {
		f.st.SetCurrentPrice(f.cfg.Exchange, symbol, p, min(ts, time.Now().UnixMilli()))
	}
}

func (f *Feeder) onTicker(data json.RawMessage) result {
	var t exchange.Ticker24h
	if err := json.Unmarshal(data, &t); err != nil {
		return malformed
	}
	return f.applyTicker(t)
}

func (f *Feeder) applyTicker(t exchange.Ticker24h) result {
	if !slices.Contains(f.cfg.Symbols, t.Symbol) {
		return ignored
	}
	var v [4]float64
	for i, s := range []string{t.LastPrice, t.HighPrice, t.LowPrice, t.Volume} {
		x, err := num(s)
		if err != nil {
			return malformed
		}
		v[i] = x
	}
	if _, err := f.st.AddTicker(f.cfg.Exchange, t.Symbol, store.Ticker{Timestamp: t.CloseTime, Last: v[0], High: v[1], Low: v[2], Volume: v[3]}); err != nil {
		return malformed
	}
	f.price(t.Symbol, v[0], t.CloseTime)
	return applied
}

func (f *Feeder) onPositions(data json.RawMessage) result {
	var ps []exchange.Position
	if err := json.Unmarshal(data, &ps); err != nil {
		return malformed
	}
	res := ignored
	for _, p := range ps {
		switch r := f.applyPosition(p); {
		case r == applied, r == malformed:
			res = r
		case r == stale && res == ignored:
			res = stale
		}
		if res == malformed {
			break
		}
	}
	return res
}

// applyPosition sets a one-way (positionSide BOTH) position unless the
// Store holds a newer state of it. Hedge-mode sides are ignored: the Store
// holds one position per route.
func (f *Feeder) applyPosition(p exchange.Position) result {
	if p.PositionSide != "" && p.PositionSide != "BOTH" {
		return ignored
	}
	if p.Symbol == "" {
		return malformed
	}
	if p.UpdateTime != 0 && p.UpdateTime < f.posTime[p.Symbol] {
		return stale // 0: the time is unknown, the update applies
	}
	qty, err := num(p.PositionAmt)
	if err != nil {
		return malformed
	}
	entry := 0.0
	if p.EntryPrice != "" {
		if entry, err = num(p.EntryPrice); err != nil {
			return malformed
		}
	}
	prev, had := f.st.Position(f.cfg.Exchange, p.Symbol)
	opened := prev.OpenedAt
	switch {
	case qty == 0:
		opened = 0
	case !had || !prev.IsOpen():
		opened = p.UpdateTime
	}
	cur := prev.CurrentPrice
	if lp, ok := f.lastPrice[p.Symbol]; ok {
		cur = lp
	}
	if err := f.st.SetPosition(store.Position{
		Exchange: f.cfg.Exchange, Symbol: p.Symbol, Qty: qty, EntryPrice: entry, CurrentPrice: cur,
		Leverage: prev.Leverage, LiquidationPrice: prev.LiquidationPrice, OpenedAt: opened, UpdatedAt: p.UpdateTime,
	}); err != nil {
		return malformed
	}
	f.posTime[p.Symbol] = max(f.posTime[p.Symbol], p.UpdateTime)
	return applied
}

func (f *Feeder) onBalances(data json.RawMessage) result {
	var bs []exchange.Balance
	if err := json.Unmarshal(data, &bs); err != nil {
		return malformed
	}
	res := ignored
	for _, b := range bs {
		switch r := f.applyBalance(b); {
		case r == applied, r == malformed:
			res = r
		case r == stale && res == ignored:
			res = stale
		}
		if res == malformed {
			break
		}
	}
	return res
}

// applyBalance sets an asset's wallet balance unless the Store holds a
// newer one.
func (f *Feeder) applyBalance(b exchange.Balance) result {
	if b.Asset == "" {
		return malformed
	}
	if b.UpdateTime != 0 && b.UpdateTime < f.balTime[b.Asset] {
		return stale // 0: the time is unknown, the update applies
	}
	w, err := num(b.WalletBalance)
	if err != nil {
		return malformed
	}
	if err := f.st.SetBalance(f.cfg.Exchange, b.Asset, w); err != nil {
		return malformed
	}
	f.balTime[b.Asset] = max(f.balTime[b.Asset], b.UpdateTime)
	return applied
}

// onSnapshot applies a node's seed of the whole account.
func (f *Feeder) onSnapshot(data json.RawMessage) result {
	var a exchange.AccountSnapshot
	if err := json.Unmarshal(data, &a); err != nil {
		return malformed
	}
	f.applyAccount(a.Positions, a.Balances)
	return applied
}

// orderStatus maps Binance's order statuses to the Store's (Jesse's).
var orderStatus = map[string]store.OrderStatus{
	"NEW":              store.OrderActive,
	"PARTIALLY_FILLED": store.OrderPartiallyFilled,
	"FILLED":           store.OrderExecuted,
	"CANCELED":         store.OrderCanceled,
	"EXPIRED":          store.OrderCanceled,
	"EXPIRED_IN_MATCH": store.OrderCanceled,
	"REJECTED":         store.OrderRejected,
	"NEW_INSURANCE":    store.OrderLiquidated,
	"NEW_ADL":          store.OrderLiquidated,
}

// orderOf converts an order update to the Store's order (ID the client
// order id, ExchangeID the exchange's; times from the update's
// transaction time).
func orderOf(exch string, o exchange.OrderUpdate) (store.Order, error) {
	status, ok := orderStatus[o.Status]
	if !ok {
		return store.Order{}, fmt.Errorf("order status %q", o.Status)
	}
	exID := strconv.FormatInt(o.OrderID, 10)
	out := store.Order{
		ID: o.ClientOrderID, ExchangeID: exID, Exchange: exch, Symbol: o.Symbol,
		Side: strings.ToLower(o.Side), Type: strings.ToLower(o.Type), Status: status, ReduceOnly: o.ReduceOnly,
		CreatedAt: o.TransactTime,
	}
	if out.ID == "" {
		out.ID = exID
	}
	var err error
	if out.Qty, err = num(o.OrigQty); err != nil {
		return out, err
	}
	if out.FilledQty, err = num(o.CumQty); err != nil {
		return out, err
	}
	for _, p := range []string{o.Price, o.StopPrice} {
		if v, err := strconv.ParseFloat(p, 64); err == nil && v != 0 && out.Price == 0 {
			out.Price = v
		}
	}
	switch status {
	case store.OrderExecuted, store.OrderLiquidated:
		out.ExecutedAt = o.TransactTime
	case store.OrderCanceled, store.OrderRejected:
		out.CanceledAt = o.TransactTime
	}
	return out, nil
}

func (f *Feeder) onOrder(data json.RawMessage) result {
	var u exchange.OrderUpdate
	if err := json.Unmarshal(data, &u); err != nil || u.Symbol == "" {
		return malformed
	}
	o, err := orderOf(f.cfg.Exchange, u)
	if err != nil {
		return malformed
	}
	prev, ok := f.st.OrderByExchangeID(f.cfg.Exchange, o.Symbol, o.ExchangeID)
	if !ok {
		switch err := f.st.AddOrder(o); {
		case errors.Is(err, store.ErrDuplicateOrder):
			return stale
		case err != nil:
			return malformed
		}
		return applied
	}
	if !prev.Status.IsActive() && o.Status.IsActive() {
		return stale // an update from before the order ended
	}
	o.ID, o.CreatedAt = prev.ID, prev.CreatedAt
	o.ExecutedAt = max(o.ExecutedAt, prev.ExecutedAt)
	o.CanceledAt = max(o.CanceledAt, prev.CanceledAt)
	if err := f.st.UpdateOrder(o); err != nil {
		return malformed
	}
	return applied
}

// logRecord is a node's log record as published (info_log, error_log).
type logRecord struct {
	Timestamp int64          `json:"timestamp"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Attrs     map[string]any `json:"attrs"`
	NodeID    string         `json:"node_id"`
}

// logLine is the Store's text of a record: its message, then node_id and
// the attributes as key=value, sorted.
func logLine(r logRecord) string {
	var b strings.Builder
	b.WriteString(r.Message)
	if r.NodeID != "" {
		fmt.Fprintf(&b, " node_id=%s", r.NodeID)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Attrs)) {
		fmt.Fprintf(&b, " %s=%v", k, r.Attrs[k])
	}
	return b.String()
}

func (f *Feeder) onLog(isError bool, data json.RawMessage) result {
	var r logRecord
	if err := json.Unmarshal(data, &r); err != nil || r.Timestamp <= 0 {
		return malformed
	}
	if isError {
		f.st.AddErrorLog(r.Timestamp, logLine(r))
	} else {
		f.st.AddInfoLog(r.Timestamp, logLine(r))
	}
	return applied
}

// onHeartbeat watches the nodes' heartbeats: the first of a connection,
// a late one (events were lost meanwhile), a node back on Redis after an
// outage (events were published to nobody) or a restarted node calls for
// a resync.
func (f *Feeder) onHeartbeat(data json.RawMessage) result {
	var h struct {
		NodeID    string  `json:"node_id"`
		CacheTier string  `json:"cache_tier"`
		UptimeS   float64 `json:"uptime_s"`
	}
	if err := json.Unmarshal(data, &h); err != nil || h.NodeID == "" {
		return malformed
	}
	now := time.Now()
	prev, ok := f.beats[h.NodeID]
	switch {
	case len(f.beats) == 0:
		// The first heartbeat of the connection proves the node's event
		// path works; a node that acknowledged the subscription before
		// its own subscription to Redis was up lost what it published
		// meanwhile (a seed of the account at its start, say).
		f.resyncAll("first heartbeat on this connection from node " + h.NodeID)
	case !ok:
	case now.Sub(prev.at) > f.cfg.HeartbeatGap:
		f.resyncAll(fmt.Sprintf("heartbeat gap of %v from node %s", now.Sub(prev.at).Round(time.Millisecond), h.NodeID))
	case prev.tier != h.CacheTier && h.CacheTier == "redis":
		f.resyncAll("node " + h.NodeID + " is back on Redis")
	case h.UptimeS < prev.uptime:
		f.resyncAll("node " + h.NodeID + " restarted")
	}
	if !ok && len(f.beats) >= maxBeats {
		oldest := ""
		for id, b := range f.beats {
			if oldest == "" || b.at.Before(f.beats[oldest].at) {
				oldest = id
			}
		}
		delete(f.beats, oldest)
	}
	f.beats[h.NodeID] = beat{at: now, tier: h.CacheTier, uptime: h.UptimeS}
	return noted
}

// onCacheTier: a node whose cache went back to Redis published its
// events to nobody while Redis was away.
func (f *Feeder) onCacheTier(data json.RawMessage) result {
	var t struct {
		NodeID string `json:"node_id"`
		To     string `json:"to"`
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return malformed
	}
	if t.To == "redis" {
		f.resyncAll("node " + t.NodeID + "'s cache is back on Redis")
	}
	return noted
}

// resyncAll marks everything for a resync from what the Store holds: the
// next flush reads it.
func (f *Feeder) resyncAll(reason string) {
	now := time.Now()
	f.stats.resyncs.Add(1)
	f.stats.lastResync.Store(now.UnixNano())
	f.lastPoll = now
	f.cfg.Logger.Info("storefeed: resync", "reason", reason)
	for _, s := range f.order {
		if s.dirty {
			s.from = min(s.from, s.newest) // still owed from further back
		} else {
			s.from = s.newest
		}
		s.mark(now)
	}
	f.acct.mark(now)
	f.tickers = true
}

func (r *resyncState) mark(now time.Time) {
	r.dirty, r.attempts, r.due = true, 0, now
}

// retry schedules the next attempt after a failed or incomplete one.
func (r *resyncState) retry(now time.Time, backoffMax time.Duration) {
	r.attempts++
	r.due = now.Add(min(time.Second<<min(r.attempts-1, 10), backoffMax))
}

// flush does the resyncs that are due. It returns an error only when the
// node refuses the API token.
func (f *Feeder) flush(ctx context.Context) error {
	now := time.Now()
	pending := false
	for _, s := range f.order {
		if s.dirty && !now.Before(s.due) {
			if err := f.resyncSeries(ctx, s); errors.Is(err, ErrUnauthorized) {
				return err
			}
		}
		pending = pending || s.dirty
	}
	if f.tickers {
		f.tickers = false
		for _, sym := range f.cfg.Symbols {
			t, err := f.client.Ticker24h(ctx, sym)
			if err != nil {
				if errors.Is(err, ErrUnauthorized) {
					return err
				}
				f.stats.resyncErrors.Add(1)
				continue
			}
			f.applyTicker(t)
		}
	}
	if f.acct.dirty && !now.Before(f.acct.due) {
		if err := f.resyncAccount(ctx); errors.Is(err, ErrUnauthorized) {
			return err
		} else if err != nil {
			f.stats.resyncErrors.Add(1)
			f.acct.retry(now, f.cfg.BackoffMax)
			f.cfg.Logger.Warn("storefeed: reading the account failed; retrying", "err", err)
		} else {
			f.acct.dirty = false
		}
	}
	pending = pending || f.acct.dirty
	if !pending && !f.readyDone && f.stats.resyncs.Load() > 0 {
		f.readyDone = true
		close(f.ready)
	}
	return nil
}

// resyncSeries reads the klines of s from the newest one the Store held
// when the resync was asked for: a few first, more (up to the Store's
// capacity and MaxKlines) until the node's rows reach back to it.
func (f *Feeder) resyncSeries(ctx context.Context, s *series) error {
	now := time.Now()
	capacity := f.st.Config().CandleCapacity
	if c, ok := f.st.Config().CandleCapacityByTimeframe[s.interval]; ok {
		capacity = c
	}
	most := min(capacity, MaxKlines)
	limit := most
	if s.from != 0 {
		limit = min(64, most)
	}
	var rows []exchange.Kline
	for {
		var err error
		rows, err = f.client.Klines(ctx, s.symbol, s.interval, limit)
		if err != nil {
			f.stats.resyncErrors.Add(1)
			s.retry(now, f.cfg.BackoffMax)
			f.cfg.Logger.Warn("storefeed: reading klines failed; retrying", "symbol", s.symbol, "interval", s.interval, "err", err)
			return err
		}
		if f.covers(s, rows) || len(rows) < limit || limit == most {
			break
		}
		limit = min(limit*4, most)
	}
	for i, k := range rows {
		k.Closed = i < len(rows)-1 // the last row may be forming
		if f.applyKline(s, k) == applied {
			f.stats.klinesResynced.Add(1)
		}
	}
	switch {
	case f.covers(s, rows):
		s.dirty = false
	case len(rows) == most, s.attempts+1 >= MaxGapRetries:
		s.dirty = false
		f.stats.gapsUnfilled.Add(1)
		f.cfg.Logger.Warn("storefeed: the node does not serve the klines the Store lacks; a gap remains",
			"symbol", s.symbol, "interval", s.interval, "from", s.from, "rows", len(rows))
	default:
		s.retry(now, f.cfg.BackoffMax) // the node is still filling its series
	}
	return nil
}

// covers reports whether rows reach back to the candle the resync starts
// from (any rows do for an empty series).
func (f *Feeder) covers(s *series, rows []exchange.Kline) bool {
	return len(rows) > 0 && (s.from == 0 || rows[0].OpenTime <= s.from)
}

// resyncAccount reads the positions and the configured assets' balances.
// Positions the Store holds open and the node no longer lists are closed.
func (f *Feeder) resyncAccount(ctx context.Context) error {
	ps, err := f.client.Positions(ctx)
	if errors.Is(err, ErrNoAccount) {
		if !f.noAccount {
			f.cfg.Logger.Info("storefeed: the node has no exchange account: no positions or balances")
		}
		f.noAccount = true
		return nil
	}
	if err != nil {
		return err
	}
	f.noAccount = false
	var bs []exchange.Balance
	for _, a := range f.cfg.Assets {
		b, err := f.client.Balance(ctx, a)
		switch {
		case errors.Is(err, exchange.ErrNoBalance):
			continue
		case err != nil:
			return err
		}
		bs = append(bs, b)
	}
	f.applyAccount(ps, bs)
	return nil
}

// applyAccount applies a snapshot of the account: every open position
// (one the Store holds open and ps lacks is closed) and some balances.
func (f *Feeder) applyAccount(ps []exchange.Position, bs []exchange.Balance) {
	seen := map[string]bool{}
	var newest int64
	for _, p := range ps {
		if f.applyPosition(p) != ignored {
			seen[p.Symbol] = true
		}
		newest = max(newest, p.UpdateTime)
	}
	for _, held := range f.st.OpenPositions() {
		if held.Exchange == f.cfg.Exchange && !seen[held.Symbol] {
			f.applyPosition(exchange.Position{Symbol: held.Symbol, PositionSide: "BOTH", PositionAmt: "0", UpdateTime: max(newest, f.posTime[held.Symbol])})
		}
	}
	for _, b := range bs {
		f.applyBalance(b)
	}
}
