package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/config"
)

// simCmd runs the simulated Binance USDⓈ-M futures exchange on its own, for
// nodes (--exchange-rest/--exchange-ws) and for scripting with curl.
func simCmd(ctx context.Context, e *env, args []string) error {
	var listen, symbols, chaos string
	var speed float64
	var seed int64
	var keyTTL time.Duration
	var accts accountFlags
	cmd := config.Command{Name: "sim", Summary: "Runs a simulated Binance USDⓈ-M futures exchange on its own: REST, market streams and user data streams in Binance's wire format.",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:9090", "address to serve REST and WebSocket on")
			fs.Float64Var(&speed, "speed", 1, "run the market clock this many times faster than real time")
			fs.StringVar(&symbols, "symbols", "BTCUSDT,ETHUSDT", "symbols to list, comma-separated")
			fs.Int64Var(&seed, "seed", 1, "random walk seed: the same seed gives the same market")
			fs.Func("api-key", "API key of an account for the signed endpoints and the user data stream (repeatable: each --api-key/--api-secret pair is one account)", accts.key)
			fs.Func("api-secret", "HMAC secret of the account of the neighbouring --api-key", accts.secret)
			fs.Func("balance", "starting balance ASSET=AMOUNT of the current account, e.g. USDT=10000 (repeatable)", accts.balance)
			fs.DurationVar(&keyTTL, "listen-key-ttl", time.Hour, "listenKey lifetime without a keepalive (real time)")
			fs.StringVar(&chaos, "chaos", "", "every stream fault at once from the start, on a seeded schedule per connection: \"on\" or knobs key=value,… (seed=N, drop=4s, stall=15s, stallFor=40s, flood=10s, floodFrames=50000, floodWithin=1s, big=8s, bigSizes=2097152/16777216, garbage=500ms, replay=2s, resend=1s; off for never)")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	stdout := e.stdout
	if err := accts.check(); err != nil {
		return fmt.Errorf("%w: sim: %w", errUsage, err)
	}
	var syms []string
	for _, s := range strings.Split(symbols, ",") {
		if s = strings.ToUpper(strings.TrimSpace(s)); s != "" {
			syms = append(syms, s)
		}
	}
	scfg := sim.Config{Symbols: syms, Speed: speed, Seed: seed, Accounts: accts.list, ListenKeyTTL: keyTTL}
	if chaos != "" {
		if chaos == "on" {
			chaos = ""
		}
		c, err := sim.ParseChaos(chaos, sim.Chaos{Seed: seed})
		if err != nil {
			return fmt.Errorf("%w: sim: --chaos: %w", errUsage, err)
		}
		scfg.Chaos = &c
	}
	s, err := sim.New(scfg)
	if err != nil {
		return fmt.Errorf("%w: sim: %w", errUsage, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("sim: listen on %s: %w", listen, err)
	}
	fmt.Fprintf(stdout, "simulated Binance USDⓈ-M futures on %s: REST http://%[2]s/fapi/v1/…, streams ws://%[2]s/market/stream and ws://%[2]s/public/stream; speed %gx, symbols %v\n",
		ln.Addr(), ln.Addr(), speed, syms)
	if scfg.Chaos != nil {
		fmt.Fprintf(stdout, "chaos: every stream fault at once, seed %d (GET http://%s/sim/chaos; POST /sim/fault?mode=none stops it); ground truth GET http://%[2]s/sim/truth/klines\n",
			scfg.Chaos.Seed, ln.Addr())
	}
	if n := len(accts.list); n > 0 {
		fmt.Fprintf(stdout, "%d account(s): signed REST /fapi/v3/account, /fapi/v3/positionRisk, /fapi/v1/order (MARKET), /fapi/v1/listenKey; user data ws://%s/private/ws?listenKey=…; signed timestamps use the real clock\n",
			n, ln.Addr())
	}
	// Serve runs the market too.
	return s.Serve(ctx, ln)
}

// accountFlags gathers --api-key, --api-secret and --balance in command-
// line order: a key or a secret starts a new account unless the current
// one still lacks it; a balance goes to the current account.
type accountFlags struct {
	list []sim.Account
}

func (f *accountFlags) current(need func(*sim.Account) bool) *sim.Account {
	if n := len(f.list); n > 0 && need(&f.list[n-1]) {
		return &f.list[n-1]
	}
	f.list = append(f.list, sim.Account{})
	return &f.list[len(f.list)-1]
}

func (f *accountFlags) key(v string) error {
	if v == "" {
		return errors.New("empty API key")
	}
	f.current(func(a *sim.Account) bool { return a.APIKey == "" }).APIKey = v
	return nil
}

func (f *accountFlags) secret(v string) error {
	if v == "" {
		return errors.New("empty API secret")
	}
	f.current(func(a *sim.Account) bool { return a.APISecret == "" }).APISecret = v
	return nil
}

func (f *accountFlags) balance(v string) error {
	asset, amount, ok := strings.Cut(v, "=")
	if !ok || asset == "" || amount == "" {
		return fmt.Errorf("balance %q: want ASSET=AMOUNT", v)
	}
	a := f.current(func(*sim.Account) bool { return true })
	if a.Balances == nil {
		a.Balances = map[string]string{}
	}
	a.Balances[strings.ToUpper(asset)] = amount
	return nil
}

func (f *accountFlags) check() error {
	for _, a := range f.list {
		switch {
		case a.APIKey == "":
			return errors.New("an account has --api-secret or --balance but no --api-key")
		case a.APISecret == "":
			return fmt.Errorf("--api-key %s has no --api-secret", a.APIKey)
		}
	}
	return nil
}
