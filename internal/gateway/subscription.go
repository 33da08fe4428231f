package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// reply waits (up to Config.SubscribeWait) until the bus has confirmed the
// subscription, so the protocol's promise holds: every event published
// after the reply reaches the client.
//
// State, under Gateway.mu: listeners counts clients with a non-empty set;
// ready is the current subscription's confirmation, closed by the bus's
// ready callback, and nil while the gateway is not subscribed (nor about
// to be). Run's goroutine owns the subscription itself (subscribeLoop).

// listen records that c's set is now empty or not, and returns the
// subscription's confirmation to wait on when it is not (nil: nothing to
// wait for). Only c's reader calls it, and endClient once that is over.
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
			g.ready = make(chan struct{})
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

// awaitBus waits until ready is closed, up to SubscribeWait: with Redis
// down the reply goes anyway, and the set's events flow once the bus
// subscribes.
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
		ready := g.ready
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
			return rs.SubscribeReady(ctx, g.publish, sync.OnceFunc(func() { close(ready) }))
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
				g.ready = nil // a listener from now on starts the next subscription
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
