package keyspace_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/keyspace"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestGoldenTable(t *testing.T) {
	got := keyspace.MustNew(keyspace.Config{}).Table()
	path := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test ./keyspace -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("key table changed (-golden +got); if intended, run go test ./keyspace -update:\n%s", diff)
	}
}

func TestBuilders(t *testing.T) {
	r := keyspace.MustNew(keyspace.Config{})
	mk := func(k keyspace.Key, err error) keyspace.Key {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	tests := []struct {
		key  keyspace.Key
		name string
		ttl  time.Duration
	}{
		{r.Positions(), "ats:positions:cache", 300 * time.Second},
		{mk(r.Balance("usdt")), "ats:balance:cache:USDT", 300 * time.Second},
		{mk(r.Kline("btcusdt", "1m")), "market:kline:BTCUSDT:1m", 600 * time.Second},
		{mk(r.Kline("BTCUSDT", "15m")), "market:kline:BTCUSDT:15m", 1800 * time.Second},
		{mk(r.Kline("BTCUSDT", "4h")), "market:kline:BTCUSDT:4h", 8 * time.Hour},
		{mk(r.Kline("BTCUSDT", "1M")), "market:kline:BTCUSDT:1M", 48 * time.Hour},
		{mk(r.Ticker24h("ETHUSDT")), "ticker_24h:ETHUSDT", 30 * time.Second},
		{r.MarketTicker24h(), "market:ticker_24h", 120 * time.Second},
		{r.BookTicker(), "market:book_ticker", 30 * time.Second},
		{mk(r.SymbolInfo("BTCUSDT")), "symbol_info:BTCUSDT", time.Hour},
		{mk(r.ListenKey("main")), "listen_key:main", 3300 * time.Second},
		{r.MarketWSLeader(), "market_ws_leader", 30 * time.Second},
	}
	for _, tt := range tests {
		if tt.key.Name() != tt.name || tt.key.TTL() != tt.ttl {
			t.Errorf("got %s ttl %v, want %s ttl %v", tt.key.Name(), tt.key.TTL(), tt.name, tt.ttl)
		}
		if err := tt.key.Valid(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestInvalidParts(t *testing.T) {
	r := keyspace.MustNew(keyspace.Config{})
	for _, sym := range []string{"", "BTC:USDT", "BTC USDT", "BTC\tUSDT", "BTC\x00", "BTC*", "BTC?", "BTC[1]", `BTC\`, "{x}", strings.Repeat("A", 129), "\xff"} {
		if _, err := r.Kline(sym, "1m"); !errors.Is(err, keyspace.ErrInvalidPart) {
			t.Errorf("Kline(%q): err = %v, want ErrInvalidPart", sym, err)
		}
	}
	if _, err := r.Kline("BTCUSDT", "7m"); !errors.Is(err, keyspace.ErrInvalidPart) {
		t.Errorf("unknown interval accepted: %v", err)
	}
	if _, err := r.Key(keyspace.KindBalance); err == nil {
		t.Error("missing part accepted")
	}
	if _, err := r.Key(keyspace.KindBalance, "A", "B"); err == nil {
		t.Error("extra part accepted")
	}
	if _, err := r.Key("nope"); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestNoTTLIsAnError(t *testing.T) {
	if err := (keyspace.Key{}).Valid(); err == nil {
		t.Error("zero Key is valid")
	}
	r := keyspace.MustNew(keyspace.Config{})
	if _, err := r.Positions().WithTTL(0); !errors.Is(err, keyspace.ErrNoTTL) {
		t.Errorf("WithTTL(0): %v", err)
	}
	if _, err := r.Positions().WithTTL(-time.Second); !errors.Is(err, keyspace.ErrNoTTL) {
		t.Errorf("WithTTL(-1s): %v", err)
	}
	if err := r.Register(keyspace.Kind{Name: "forever", Pattern: "forever:{id}"}); !errors.Is(err, keyspace.ErrNoTTL) {
		t.Errorf("Register without TTL: %v", err)
	}
	if _, err := keyspace.New(keyspace.Config{TTL: map[string]time.Duration{"positions": 0}}); !errors.Is(err, keyspace.ErrNoTTL) {
		t.Errorf("zero TTL override: %v", err)
	}
	if _, err := keyspace.New(keyspace.Config{TTL: map[string]time.Duration{"nope": time.Second}}); err == nil {
		t.Error("override of unknown kind accepted")
	}
}

func TestPrefixOverridesAndCustomKinds(t *testing.T) {
	r, err := keyspace.New(keyspace.Config{Prefix: "prod:", TTL: map[string]time.Duration{"positions": time.Minute, "kline": 20 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if k := r.Positions(); k.Name() != "prod:ats:positions:cache" || k.TTL() != time.Minute {
		t.Errorf("positions = %s %v", k.Name(), k.TTL())
	}
	if ttl, _ := r.KlineTTL("1m"); ttl != 20*time.Minute {
		t.Errorf("kline 1m TTL with floor 20m = %v", ttl)
	}
	if err := r.Register(keyspace.Kind{Name: "recommendation", Pattern: "ats:recommendation:{SYMBOL}", TTL: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	k, err := r.Key("recommendation", "btcusdt")
	if err != nil || k.Name() != "prod:ats:recommendation:BTCUSDT" || k.TTL() != 10*time.Minute {
		t.Fatalf("custom key = %v %v, %v", k, k.TTL(), err)
	}
	if err := r.Register(keyspace.Kind{Name: "recommendation", Pattern: "x:{a}", TTL: time.Second}); err == nil {
		t.Error("duplicate kind accepted")
	}
	if err := r.Register(keyspace.Kind{Name: "clash", Pattern: "ticker_24h:{x}", TTL: time.Second}); err == nil {
		t.Error("colliding pattern accepted")
	}
	ch, err := r.Channel("9000")
	if err != nil || ch != "prod:9000:channel:1" {
		t.Errorf("channel = %q, %v", ch, err)
	}
	pat, _ := r.ScanPattern(keyspace.KindKline)
	if pat != "prod:market:kline:*:*" {
		t.Errorf("scan pattern = %q", pat)
	}
	if _, err := keyspace.New(keyspace.Config{Prefix: "a b"}); err == nil {
		t.Error("prefix with a space accepted")
	}
}

func TestParse(t *testing.T) {
	r := keyspace.MustNew(keyspace.Config{Prefix: "p:"})
	tests := []struct {
		name  string
		kind  string
		parts []string
	}{
		{"p:market:kline:BTCUSDT:1m", keyspace.KindKline, []string{"BTCUSDT", "1m"}},
		{"p:ats:positions:cache", keyspace.KindPositions, nil},
		{"p:ats:balance:cache:USDT", keyspace.KindBalance, []string{"USDT"}},
		{"p:listen_key:acct-1", keyspace.KindListenKey, []string{"acct-1"}},
	}
	for _, tt := range tests {
		kind, parts, err := r.Parse(tt.name)
		if err != nil || kind != tt.kind || !cmp.Equal(parts, tt.parts) {
			t.Errorf("Parse(%q) = %q %q %v, want %q %q", tt.name, kind, parts, err, tt.kind, tt.parts)
		}
	}
	for _, bad := range []string{"market:kline:BTCUSDT:1m", "p:market:kline:btcusdt:1m", "p:unknown", "p:market:kline:BTC:1m:x", ""} {
		if kind, _, err := r.Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %q, want error", bad, kind)
		}
	}
}

func FuzzKeyRoundTrip(f *testing.F) {
	r := keyspace.MustNew(keyspace.Config{Prefix: "fz:"})
	f.Add("BTCUSDT", "1m", "USDT")
	f.Add("a:b", "1M", " ")
	f.Add("\x00", "x", "é")
	f.Fuzz(func(t *testing.T, sym, iv, asset string) {
		for _, build := range []func() (keyspace.Key, error){
			func() (keyspace.Key, error) { return r.Kline(sym, iv) },
			func() (keyspace.Key, error) { return r.Balance(asset) },
			func() (keyspace.Key, error) { return r.ListenKey(asset) },
		} {
			k, err := build()
			if err != nil {
				continue
			}
			if err := k.Valid(); err != nil {
				t.Fatalf("built invalid key %q: %v", k.Name(), err)
			}
			kind, parts, err := r.Parse(k.Name())
			if err != nil || kind != k.Kind() {
				t.Fatalf("Parse(%q) = %q %q %v, want kind %q", k.Name(), kind, parts, err, k.Kind())
			}
			again, err := r.Key(kind, parts...)
			if err != nil || again.Name() != k.Name() {
				t.Fatalf("rebuild of %q = %q %v", k.Name(), again.Name(), err)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	r := keyspace.MustNew(keyspace.Config{})
	f.Add("market:kline:BTCUSDT:1m")
	f.Add("ats:balance:cache:")
	f.Add(":::")
	f.Fuzz(func(t *testing.T, name string) {
		kind, parts, err := r.Parse(name)
		if err != nil {
			return
		}
		k, err := r.Key(kind, parts...)
		if err != nil {
			t.Fatalf("Parse(%q) gave %q %q that do not build: %v", name, kind, parts, err)
		}
		if k.Name() != name {
			t.Fatalf("Parse(%q) rebuilds as %q", name, k.Name())
		}
	})
}

func TestMaxValue(t *testing.T) {
	mk := func(k keyspace.Key, err error) keyspace.Key {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	def := keyspace.MustNew(keyspace.Config{})
	capped := keyspace.MustNew(keyspace.Config{MaxValue: 16 << 10})
	for _, r := range []*keyspace.Registry{def, capped} {
		if err := r.Register(keyspace.Kind{Name: "custom", Pattern: "custom:{id}", TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		key       keyspace.Key
		want      int
		wantCap16 int
	}{
		{"kline member", mk(def.Kline("BTCUSDT", "1m")), 4 << 10, 4 << 10},
		{"ticker", mk(def.Ticker24h("BTCUSDT")), 4 << 10, 4 << 10},
		{"symbol info", mk(def.SymbolInfo("BTCUSDT")), 64 << 10, 16 << 10},
		{"positions", def.Positions(), 1 << 20, 16 << 10},
		{"balance", mk(def.Balance("USDT")), 4 << 10, 4 << 10},
		{"book ticker field", def.BookTicker(), 4 << 10, 4 << 10},
		{"lease", def.MarketWSLeader(), 1 << 10, 1 << 10},
		{"custom kind without a limit", mk(def.Key("custom", "a")), keyspace.DefaultMaxValue, 16 << 10},
	}
	for _, tt := range tests {
		if got := tt.key.MaxValue(); got != tt.want {
			t.Errorf("%s: MaxValue %d, want %d", tt.name, got, tt.want)
		}
	}
	// The cap bounds every kind, its own limit or not.
	for _, tt := range tests {
		kind, parts, err := capped.Parse(tt.key.Name())
		if err != nil {
			t.Fatal(err)
		}
		k := mk(capped.Key(kind, parts...))
		if got := k.MaxValue(); got != tt.wantCap16 {
			t.Errorf("%s with a 16KiB cap: MaxValue %d, want %d", tt.name, got, tt.wantCap16)
		}
	}
	if k, _ := mk(def.Kline("BTCUSDT", "4h")).WithTTL(time.Hour); k.MaxValue() != 4<<10 {
		t.Errorf("WithTTL lost MaxValue: %d", k.MaxValue())
	}
	for _, c := range []int{-1, 1, keyspace.MinMaxValue - 1} {
		if _, err := keyspace.New(keyspace.Config{MaxValue: c}); err == nil {
			t.Errorf("cap %d accepted", c)
		}
	}
	if err := def.Register(keyspace.Kind{Name: "neg", Pattern: "neg:{id}", TTL: time.Minute, MaxValue: -1}); err == nil {
		t.Error("negative MaxValue accepted")
	}
}

func TestSizes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{{"65536", 65536}, {"65536B", 65536}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"4KB", 4 << 10}, {" 2MB ", 2 << 20}, {"0", 0}} {
		got, err := keyspace.ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d %v, want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1GiB", "1.5MiB", "99999999MiB"} {
		if n, err := keyspace.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
	for _, n := range []int{1500, 4 << 10, 64 << 10, 1 << 20, 3 << 20} {
		if back, err := keyspace.ParseSize(keyspace.FormatSize(n)); err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q does not parse back: %d %v", n, keyspace.FormatSize(n), back, err)
		}
	}
}

// TestClusterNaming: under cluster naming every key carries a hash tag,
// the keys one script touches share it, and Parse and ScanPattern read the
// names back.
func TestClusterNaming(t *testing.T) {
	r := keyspace.MustNew(keyspace.Config{Prefix: "prod:", HashTags: true})
	mk := func(k keyspace.Key, err error) keyspace.Key {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	lease := r.MarketWSLeader()
	acct := mk(r.AccountLeader("main"))
	kline := mk(r.Kline("btcusdt", "1m"))
	tests := []struct {
		key  keyspace.Key
		name string
		tag  string
	}{
		{kline, "prod:market:kline:{BTCUSDT}:1m", "BTCUSDT"},
		{mk(r.Ticker24h("BTCUSDT")), "prod:ticker_24h:{BTCUSDT}", "BTCUSDT"},
		{mk(r.SlotFence(kline, lease.Name())), "prod:slot_fence:{BTCUSDT}:market_ws_leader", "BTCUSDT"},
		{mk(r.SlotFence(kline, mk(r.MarketWSGroup("g3")).Name())), "prod:slot_fence:{BTCUSDT}:market_ws_leader.g3", "BTCUSDT"},
		{mk(r.MarketWSGroup("g3")), "prod:market_ws_leader:{g3}", "g3"},
		{lease, "prod:{market}:market_ws_leader", "market"},
		{mk(r.LeaderEpoch(lease)), "prod:{market}:leader_epoch:market_ws_leader", "market"},
		{mk(r.SlotFence(r.BookTicker(), acct.Name())), "prod:slot_fence:{market}:account_leader.main", "market"},
		{r.BookTicker(), "prod:{market}:market:book_ticker", "market"},
		{acct, "prod:{account}:account_leader:main", "account"},
		{mk(r.LeaderEpoch(acct)), "prod:{account}:leader_epoch:account_leader.main", "account"},
		{r.Positions(), "prod:{account}:ats:positions:cache", "account"},
		{mk(r.Balance("usdt")), "prod:{account}:ats:balance:cache:USDT", "account"},
		{mk(r.RESTWeight("ip1")), "prod:rest_weight:{ip1}", "ip1"},
		{mk(r.RESTCooldown("ip1")), "prod:rest_cooldown:{ip1}", "ip1"},
	}
	for _, tt := range tests {
		if tt.key.Name() != tt.name {
			t.Errorf("key %q, want %q", tt.key.Name(), tt.name)
		}
		if got := keyspace.HashTag(tt.key.Name()); got != tt.tag {
			t.Errorf("hash tag of %q: %q, want %q", tt.key.Name(), got, tt.tag)
		}
		kind, _, err := r.Parse(tt.key.Name())
		if err != nil || kind != tt.key.Kind() {
			t.Errorf("Parse(%q) = %q, %v; want %q", tt.key.Name(), kind, err, tt.key.Kind())
		}
		pat, err := r.ScanPattern(tt.key.Kind())
		if err != nil {
			t.Fatal(err)
		}
		if !globMatch(pat, tt.key.Name()) {
			t.Errorf("scan pattern %q does not match %q", pat, tt.key.Name())
		}
	}
	// A seed-named key is not a cluster-named one.
	if _, _, err := r.Parse("prod:market:kline:BTCUSDT:1m"); err == nil {
		t.Error("a seed name parsed under cluster naming")
	}
	if _, err := keyspace.MustNew(keyspace.Config{}).SlotFence(kline, lease.Name()); err == nil {
		t.Error("a slot fence under standard naming")
	}
	if _, err := keyspace.New(keyspace.Config{Prefix: "a{b}:", HashTags: true}); err == nil {
		t.Error("a braced prefix accepted under cluster naming")
	}
	// A kind declared by a program without a slot takes its name as tag.
	if err := r.Register(keyspace.Kind{Name: "signal", Pattern: "signal:{SYMBOL}", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if k := mk(r.Key("signal", "BTCUSDT")); k.Name() != "prod:{signal}:signal:BTCUSDT" {
		t.Errorf("custom kind: %q", k.Name())
	}
	if err := r.Register(keyspace.Kind{Name: "bad", Pattern: "bad:{x}", Slot: "{y}", TTL: time.Minute}); err == nil {
		t.Error("a slot naming no placeholder accepted")
	}
	// Only the epoch counter takes another tag than its own.
	if kind, _, err := r.Parse("prod:{market}:signal:BTCUSDT"); err == nil {
		t.Errorf("a custom kind parsed under another kind's tag: %q", kind)
	}
	// A kind that would build the epoch counter's cluster names collides.
	if err := r.Register(keyspace.Kind{Name: "fake", Pattern: "{a}:leader_epoch:{b}", Slot: "{a}", TTL: time.Minute}); err == nil {
		t.Error("a kind colliding with leader_epoch under cluster naming accepted")
	}
}

// globMatch is Redis's glob for the patterns keyspace writes: '*' matches
// any run of bytes, ':' included.
func globMatch(pat, s string) bool {
	if pat == "" {
		return s == ""
	}
	if pat[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if globMatch(pat[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	return s != "" && pat[0] == s[0] && globMatch(pat[1:], s[1:])
}
