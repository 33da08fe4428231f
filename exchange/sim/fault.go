package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// FaultMode is a way the stream side misbehaves on purpose.
type FaultMode string

const (
	// FaultNone is normal service.
	FaultNone FaultMode = "none"
	// FaultDrop closes every WebSocket connection at once, abruptly (TCP
	// close, no close frame). With a Duration, new connections are refused
	// (HTTP 503) until it ends.
	FaultDrop FaultMode = "drop"
	// FaultStall keeps connections open but sends nothing: no data, no
	// answers, no pings, no pongs.
	FaultStall FaultMode = "stall"
	// FaultMalformed follows every stream message with a bad frame:
	// truncated JSON, wrong field types, not JSON, a JSON string, in turn.
	FaultMalformed FaultMode = "malformed"
	// FaultOversized sends every connection one frame of OversizedBytes (a
	// valid JSON event with a huge field). With a Duration, connections
	// opened before it ends get one too.
	FaultOversized FaultMode = "oversized"
	// FaultUnknown adds unknown fields to every stream payload and follows
	// each with an event of an unknown "e" type.
	FaultUnknown FaultMode = "unknown"
	// FaultChaos is every fault at once, per connection, on a seeded
	// schedule: drops of every kind, silent stalls, floods, big messages,
	// garbage, replayed finals with other prices and in-progress updates
	// re-sent after the final. See Chaos.
	FaultChaos FaultMode = "chaos"
)

// OversizedBytes is the size of FaultOversized's frame: above the 4 MiB
// a client such as exchange/binance accepts by default.
const OversizedBytes = 5 << 20

// Fault is a fault and how long it lasts; Duration 0 means until the next
// SetFault (drop and oversized then act once, on the connections open now).
// Chaos sets FaultChaos's knobs (nil: Config.Chaos's, or the defaults).
type Fault struct {
	Mode     FaultMode
	Duration time.Duration
	Chaos    *Chaos
}

type faultState struct {
	mu    sync.Mutex
	mode  FaultMode
	until time.Time // real time; zero: until replaced
	gen   uint64
	// chaos is the FaultChaos in force (nil: none); lastChaos the last one.
	chaos, lastChaos *chaosRun
	// conns numbers connections in the order they are accepted (chaos
	// schedules are drawn from it).
	conns atomic.Uint64
}

type faultSnap struct {
	mode  FaultMode
	gen   uint64
	chaos *chaosRun
}

// snapshot returns the fault in force now.
func (f *faultState) snapshot() faultSnap {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode != "" && f.mode != FaultNone && !f.until.IsZero() && !time.Now().Before(f.until) {
		f.mode, f.until, f.chaos = FaultNone, time.Time{}, nil
	}
	return faultSnap{mode: f.mode, gen: f.gen, chaos: f.chaos}
}

// ParseFaultMode parses a mode name of POST /sim/fault.
func ParseFaultMode(s string) (FaultMode, error) {
	switch m := FaultMode(s); m {
	case FaultNone, FaultDrop, FaultStall, FaultMalformed, FaultOversized, FaultUnknown, FaultChaos:
		return m, nil
	}
	return "", fmt.Errorf("sim: unknown fault mode %q (want none|drop|stall|malformed|oversized|unknown|chaos)", s)
}

// SetFault switches the stream side's fault, replacing the one in force.
func (s *Server) SetFault(f Fault) error {
	if f.Mode == "" {
		f.Mode = FaultNone
	}
	if _, err := ParseFaultMode(string(f.Mode)); err != nil {
		return err
	}
	if f.Duration < 0 {
		return fmt.Errorf("sim: negative fault duration %v", f.Duration)
	}
	s.fault.mu.Lock()
	s.fault.gen++
	gen := s.fault.gen
	s.fault.mode, s.fault.until, s.fault.chaos = f.Mode, time.Time{}, nil
	if f.Mode == FaultChaos {
		c := f.Chaos
		if c == nil {
			c = s.cfg.Chaos
		}
		if c == nil {
			c = &Chaos{}
		}
		s.fault.chaos = newChaosRun(*c, gen)
		s.fault.lastChaos = s.fault.chaos
	}
	if f.Duration > 0 {
		s.fault.until = time.Now().Add(f.Duration)
	} else if f.Mode == FaultDrop || f.Mode == FaultOversized {
		s.fault.mode = FaultNone // one shot
	}
	s.fault.mu.Unlock()

	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	for c := range s.hub.clients {
		switch f.Mode {
		case FaultDrop:
			c.closing.Store(true)
			if c.conn != nil {
				go c.conn.CloseNow() // abrupt on purpose: no close frame
			}
		case FaultOversized:
			c.sendOversized(gen, c.firstSub())
		}
	}
	return nil
}

// firstSub names the stream an oversized frame claims to be; the caller
// holds the hub lock.
func (c *client) firstSub() string {
	if len(c.subs) > 0 {
		return c.subs[0]
	}
	return "!ticker@arr"
}

// sendOversized queues fault generation gen's oversized frame, once.
func (c *client) sendOversized(gen uint64, stream string) {
	if c.faultGen.Swap(gen) == gen {
		return
	}
	name, _ := json.Marshal(stream)
	var b bytes.Buffer
	b.Grow(OversizedBytes + 256)
	comb := c.combined.Load()
	if comb {
		b.WriteString(`{"stream":` + string(name) + `,"data":`)
	}
	b.WriteString(`{"e":"simOversized","E":` + strconv.FormatInt(c.s.nowMs(), 10) + `,"pad":"`)
	b.Write(bytes.Repeat([]byte{'x'}, OversizedBytes-b.Len()-8))
	b.WriteString(`"}`)
	if comb {
		b.WriteByte('}')
	}
	c.enqueue(b.Bytes())
}
