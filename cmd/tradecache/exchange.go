package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/marketdata"
)

// exchangeSide is what serve needs of an exchange: REST, a stream factory
// and, for the in-process simulator, a lifecycle to run.
type exchangeSide struct {
	rest    exchange.MarketREST
	streams marketdata.StreamFactory
	run     func(ctx context.Context) error // nil for a remote exchange
	desc    string
	metrics *streamMetrics
}

type streamerFunc func(ctx context.Context) error

func (f streamerFunc) Run(ctx context.Context) error { return f(ctx) }

// newExchange connects to Binance (or any server speaking its API at
// --exchange-rest / --exchange-ws), or starts the simulated exchange in
// process on a loopback port for --demo and --exchange sim.
func newExchange(c config.Config, log *slog.Logger) (*exchangeSide, error) {
	restURL, wsURL := c.ExchangeREST, c.ExchangeWS
	side := &exchangeSide{desc: "Binance USDⓈ-M futures", metrics: newStreamMetrics()}
	if c.Demo || c.Exchange == "sim" {
		s, err := sim.New(sim.Config{Symbols: c.Symbols})
		if err != nil {
			return nil, fmt.Errorf("simulated exchange: %w", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("simulated exchange: %w", err)
		}
		restURL, wsURL = "http://"+ln.Addr().String(), "ws://"+ln.Addr().String()
		side.desc = "simulated exchange on " + restURL
		side.run = func(ctx context.Context) error {
			errc := make(chan error, 1)
			go func() { errc <- s.Serve(ctx, ln) }()
			err := s.Run(ctx)
			if serr := <-errc; err == nil {
				err = serr
			}
			return err
		}
	} else if restURL != "" {
		side.desc = "exchange at " + restURL
	}
	side.rest = binance.NewREST(binance.RESTConfig{BaseURL: restURL})
	side.streams = func(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
		s, err := binance.NewStreams(binance.StreamConfig{
			BaseURL: wsURL, Streams: names, OnEvent: onEvent, OnConnect: onConnect,
			Logger: log.With("component", "streams"),
		})
		if err != nil {
			return nil, err
		}
		return streamerFunc(func(ctx context.Context) error { return side.metrics.run(ctx, s) }), nil
	}
	return side, nil
}
