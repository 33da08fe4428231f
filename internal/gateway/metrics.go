package gateway

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type counters struct {
	sent, dropped, slow, idle, authFailures, rejected atomic.Uint64
	nextID                                            atomic.Uint64
	busSubscriptions, busWaitTimeouts                 atomic.Uint64
	busSubscribed                                     atomic.Bool
}

// Stats are the gateway's counters since New.
type Stats struct {
	Clients         int    // open WebSocket connections, authenticating ones included
	Pending         int    // connections still authenticating (bounded by MaxPending)
	Sent            uint64 // frames written: events and replies
	Dropped         uint64 // market events replaced in a full queue by a newer value of their stream (coalesced)
	SlowDisconnects uint64 // clients closed with 1008 "slow consumer": queue overflow or write timeout
	IdleDisconnects uint64 // clients closed for no pong or message within IdleTimeout
	AuthFailures    uint64 // wrong Bearer (401), wrong or missing first-message auth, auth timeout
	Rejected        uint64 // upgrades refused with 503 (MaxClients, MaxPending, not running), and clients closed with 1013 on authenticating when MaxClients was reached
	// BusSubscribed reports whether the gateway holds its bus subscription
	// (a lazy gateway only while a client listens, and SubscribeLinger after).
	BusSubscribed    bool
	BusSubscriptions uint64 // times the gateway subscribed to the bus
	BusWaitTimeouts  uint64 // "subscribed" replies sent after SubscribeWait without the bus's confirmation
}

// Stats returns the current counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		Clients:         len(*g.snap.Load()),
		Pending:         int(g.pending.Load()),
		Sent:            g.st.sent.Load(),
		Dropped:         g.st.dropped.Load(),
		SlowDisconnects: g.st.slow.Load(),
		IdleDisconnects: g.st.idle.Load(),
		AuthFailures:    g.st.authFailures.Load(),
		Rejected:        g.st.rejected.Load(),

		BusSubscribed:    g.st.busSubscribed.Load(),
		BusSubscriptions: g.st.busSubscriptions.Load(),
		BusWaitTimeouts:  g.st.busWaitTimeouts.Load(),
	}
}

var (
	descClients  = prometheus.NewDesc("tradecache_gateway_clients", "Open WebSocket connections on /ws, authenticating ones included.", nil, nil)
	descPending  = prometheus.NewDesc("tradecache_gateway_pending_clients", "WebSocket connections on /ws still authenticating (bounded apart from the others).", nil, nil)
	descSent     = prometheus.NewDesc("tradecache_gateway_messages_sent_total", "Frames written to clients: events and replies.", nil, nil)
	descDropped  = prometheus.NewDesc("tradecache_gateway_messages_dropped_total", "Market events coalesced: replaced in a slow client's full queue by a newer value of the same stream.", nil, nil)
	descSlow     = prometheus.NewDesc("tradecache_gateway_slow_disconnects_total", "Clients closed as slow consumers (queue full of non-coalescable events, or a write over WriteTimeout).", nil, nil)
	descIdle     = prometheus.NewDesc("tradecache_gateway_idle_disconnects_total", "Clients closed for no pong or message within IdleTimeout.", nil, nil)
	descAuthFail = prometheus.NewDesc("tradecache_gateway_auth_failures_total", "Failed authentications: wrong Bearer token, wrong or missing first-message auth, auth timeout.", nil, nil)
	descRejected = prometheus.NewDesc("tradecache_gateway_rejected_total", "Upgrades refused with 503 (too many clients, too many still authenticating, or gateway not running), and clients closed with 1013 on authenticating when the client limit was reached.", nil, nil)
	descBusSub   = prometheus.NewDesc("tradecache_gateway_bus_subscribed", "1 while the gateway holds its subscription to the event bus: while a client has subscribed to something, and for a linger after.", nil, nil)
	descBusSubs  = prometheus.NewDesc("tradecache_gateway_bus_subscriptions_total", "Times the gateway subscribed to the event bus.", nil, nil)
	descBusWait  = prometheus.NewDesc("tradecache_gateway_bus_wait_timeouts_total", "Subscribed replies sent without the bus having confirmed the gateway's subscription within its wait (Redis unreachable).", nil, nil)
)

// Collector exports Stats as tradecache_gateway_* metrics; register it on
// the node's registry.
func (g *Gateway) Collector() prometheus.Collector { return collector{g} }

type collector struct{ g *Gateway }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descPending, descSent, descDropped, descSlow, descIdle, descAuthFail, descRejected, descBusSub, descBusSubs, descBusWait} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.g.Stats()
	ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(s.Clients))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.Pending))
	cnt := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	cnt(descSent, s.Sent)
	cnt(descDropped, s.Dropped)
	cnt(descSlow, s.SlowDisconnects)
	cnt(descIdle, s.IdleDisconnects)
	cnt(descAuthFail, s.AuthFailures)
	cnt(descRejected, s.Rejected)
	cnt(descBusSubs, s.BusSubscriptions)
	cnt(descBusWait, s.BusWaitTimeouts)
	subscribed := 0.0
	if s.BusSubscribed {
		subscribed = 1
	}
	ch <- prometheus.MustNewConstMetric(descBusSub, prometheus.GaugeValue, subscribed)
}
