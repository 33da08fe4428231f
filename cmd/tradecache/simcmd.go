package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/tradecache/tradecache/exchange/sim"
)

// simCmd runs the simulated Binance USDⓈ-M futures exchange on its own, for
// nodes (--exchange-rest/--exchange-ws) and for scripting with curl.
func simCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "address to serve REST and WebSocket on")
	speed := fs.Float64("speed", 1, "run the market clock this many times faster than real time")
	symbols := fs.String("symbols", "BTCUSDT,ETHUSDT", "symbols to list, comma-separated")
	seed := fs.Int64("seed", 1, "random walk seed: the same seed gives the same market")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: sim: %w", errUsage, err)
	}
	var syms []string
	for _, s := range strings.Split(*symbols, ",") {
		if s = strings.ToUpper(strings.TrimSpace(s)); s != "" {
			syms = append(syms, s)
		}
	}
	s, err := sim.New(sim.Config{Symbols: syms, Speed: *speed, Seed: *seed})
	if err != nil {
		return fmt.Errorf("%w: sim: %w", errUsage, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("sim: listen on %s: %w", *listen, err)
	}
	fmt.Fprintf(stdout, "simulated Binance USDⓈ-M futures on %s: REST http://%[2]s/fapi/v1/…, streams ws://%[2]s/market/stream and ws://%[2]s/public/stream; speed %gx, symbols %v\n",
		ln.Addr(), ln.Addr(), *speed, syms)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	err = s.Run(ctx)
	if serr := <-errc; err == nil {
		err = serr
	}
	return err
}
