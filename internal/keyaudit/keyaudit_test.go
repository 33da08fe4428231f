package keyaudit_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/keyaudit"
	"github.com/tradecache/tradecache/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAuditFindsKeysWithoutTTL(t *testing.T) {
	r := testenv.Start(t) // private: this test leaves TTL-less keys on purpose, then removes them
	c := r.Client(t)
	ctx := context.Background()
	for i := range 2500 {
		c.Do(ctx, c.B().Set().Key(fmt.Sprintf("market:kline:S%d:1m", i)).Value("x").ExSeconds(600).Build())
	}
	for i := range 3 {
		c.Do(ctx, c.B().Set().Key(fmt.Sprintf("leak:%d", i)).Value("x").Build())
	}
	c.Do(ctx, c.B().Set().Key("ticker_24h:BTCUSDT").Value("x").ExSeconds(30).Build())

	var progress []int
	rep, err := keyaudit.Audit(ctx, c, keyaudit.Options{Memory: true, Count: 500, Progress: func(n int) { progress = append(progress, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.NoTTLCount != 3 || rep.Keys != 2504 {
		t.Fatalf("report: keys %d, no TTL %d %v", rep.Keys, rep.NoTTLCount, rep.NoTTL)
	}
	if diff := cmp.Diff([]string{"leak:0", "leak:1", "leak:2"}, rep.NoTTL); diff != "" {
		t.Errorf("no-TTL keys (-want +got):\n%s", diff)
	}
	if len(progress) < 2 || progress[len(progress)-1] != 2504 {
		t.Errorf("progress reports %v", progress)
	}
	got := map[string]keyaudit.Family{}
	for _, f := range rep.Families {
		got[f.Name] = f
	}
	if f := got["market:*"]; f.Keys != 2500 || f.NoTTL != 0 || f.Bytes <= 0 || f.Spread[2] != 2500 {
		t.Errorf("market family: %+v", f)
	}
	if f := got["leak:*"]; f.Keys != 3 || f.NoTTL != 3 || f.Spread[0] != 3 {
		t.Errorf("leak family: %+v", f)
	}
	if f := got["ticker_24h:*"]; f.Keys != 1 || f.Spread[1] != 1 {
		t.Errorf("ticker family: %+v", f)
	}

	limited, err := keyaudit.Audit(ctx, c, keyaudit.Options{MaxListed: 1})
	if err != nil || len(limited.NoTTL) != 1 || limited.NoTTLCount != 3 {
		t.Errorf("MaxListed 1: %v %d, %v", limited.NoTTL, limited.NoTTLCount, err)
	}
	for i := range 3 { // one by one: on a cluster they live on several masters
		c.Do(ctx, c.B().Del().Key(fmt.Sprintf("leak:%d", i)).Build())
	}
}
