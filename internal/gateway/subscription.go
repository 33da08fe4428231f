package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tradecache/tradecache/bus"
)

// The gateway's bus subscription, held only while some client listens.
//
// Receiving costs a node CPU for every event on the channel (a leader's
// market data is thousands a second), and with no client subscribed every
// one of them is decoded for nobody. So when the Subscriber can say when
// its subscription is in place (bus.ReadySubscriber), the gateway
// subscribes when a client's set first becomes non-empty and unsubscribes
// once no client has had one for Config.SubscribeLinger. A "subscribed"
// reply waits (up to Config.SubscribeWait) until the bus's subscription is
// in place, so the protocol's promise holds: every event published after
// the reply reaches the client.
//
// State, under Gateway.mu: listeners counts clients with a non-empty set;
// ready is closed while the subscription is in place (readyUp), replaced
// by an open one when the bus reports it lost, and nil while the gateway
// is not subscribed (nor about to be); gen counts the subscriptions ended,
// so that a late report of one cannot touch the next one's ready. Run's
// goroutine owns the subscription itself (subscribeLoop).

// listen records that c's set is now empty or not, and returns what to
// wait on before replying when it is not (nil: nothing to wait for). Only
// c's reader calls it, and endClient once that is over.
func (g *Gateway) listen(c *client, on bool) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if on != c.listening {
		c.listening = on
		if on {
			g.listeners++
		} else {
			g.listeners--
		}
		if on && g.listeners == 1 && g.ready == nil && g.lazy {
			g.ready, g.readyUp = make(chan struct{}), false
		}
		select { // subscribeLoop re-reads the state
		case g.subWake <- struct{}{}:
		default:
		}
	}
	if !on {
		return nil
	}
	return g.ready
}

// busState is a subscription's state callback (bus.ReadySubscriber): it
// closes ready when the subscription is in place and opens a new one when
// it is lost. gen is the count of subscriptions ended when it began.
func (g *Gateway) busState(gen uint64) func(up bool) {
	return func(up bool) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.gen != gen || g.ready == nil {
			return // a report of an ended subscription
		}
		switch {
		case up && !g.readyUp:
			close(g.ready)
			g.readyUp = true
		case !up && g.readyUp:
			g.ready, g.readyUp = make(chan struct{}), false
		}
	}
}

// awaitBus waits until ready is closed, up to SubscribeWait: with Redis
// down the reply goes anyway, and the set's events flow once the bus
// subscribes. A gateway shutting down does not wait.
func (g *Gateway) awaitBus(ready <-chan struct{}) {
	if ready == nil {
		return
	}
	select {
	case <-ready:
		return
	default:
	}
	t := time.NewTimer(g.cfg.SubscribeWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-g.quit:
	case <-t.C:
		g.st.busWaitTimeouts.Add(1)
	}
}

// subscribeLoop holds the bus subscription while there are listeners
// (always, when the gateway is not lazy) until ctx ends; it returns the
// Subscriber's error, or an error when a subscription ended by itself.
func (g *Gateway) subscribeLoop(ctx context.Context) error {
	rs, ok := g.sub.(bus.ReadySubscriber)
	if !ok {
		// Subscribed from start to end, the reply not waiting for it.
		return g.run1(ctx, func(ctx context.Context) error { return g.sub.Subscribe(ctx, g.publish) })
	}
	for {
		g.mu.Lock()
		ready, gen := g.ready, g.gen
		g.mu.Unlock()
		if ready == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-g.subWake:
				continue
			}
		}
		g.st.busSubscriptions.Add(1)
		g.st.busSubscribed.Store(true)
		err := g.run1(ctx, func(ctx context.Context) error {
			return rs.SubscribeReady(ctx, g.publish, g.busState(gen))
		})
		g.st.busSubscribed.Store(false)
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// run1 runs one subscription until ctx ends (nil) or, when the gateway is
// lazy, until no client has listened for SubscribeLinger (nil; the state's
// ready is then nil again), and returns the subscription's error or an
// error if it ended by itself.
func (g *Gateway) run1(ctx context.Context, subscribe func(context.Context) error) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- subscribe(sctx) }()
	var linger *time.Timer
	var lingerC <-chan time.Time
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		// A lazy gateway's linger runs while no client listens.
		g.mu.Lock()
		idle := g.lazy && g.listeners == 0
		g.mu.Unlock()
		switch {
		case idle && lingerC == nil:
			if linger == nil {
				linger = time.NewTimer(g.cfg.SubscribeLinger)
			} else {
				linger.Reset(g.cfg.SubscribeLinger)
			}
			lingerC = linger.C
		case !idle && lingerC != nil:
			linger.Stop()
			lingerC = nil
		}
		select {
		case err := <-done:
			switch {
			case ctx.Err() != nil:
				return nil
			case err == nil:
				return errors.New("gateway: subscription ended")
			default:
				return fmt.Errorf("gateway: subscribe: %w", err)
			}
		case <-ctx.Done():
			<-done
			return nil
		case <-g.subWake:
		case <-lingerC:
			lingerC = nil
			g.mu.Lock()
			idle := g.listeners == 0
			if idle {
				// A listener from now on starts the next subscription.
				g.ready, g.readyUp = nil, false
				g.gen++
			}
			g.mu.Unlock()
			if idle {
				cancel()
				<-done
				return nil
			}
		}
	}
}
