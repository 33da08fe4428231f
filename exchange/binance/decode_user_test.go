package binance

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
)

var (
	wantAccountDoc = exchange.AccountUpdate{
		EventTime: 1564745798939, TransactTime: 1564745798938, Reason: "ORDER",
		Balances: []exchange.Balance{
			{Asset: "USDT", WalletBalance: "122624.12345678", CrossWalletBalance: "100.12345678", UpdateTime: 1564745798938},
			{Asset: "BUSD", WalletBalance: "1.00000000", CrossWalletBalance: "0.00000000", UpdateTime: 1564745798938},
		},
		Positions: []exchange.Position{
			{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0", EntryPrice: "0.00000", BreakEvenPrice: "0",
				UnrealizedProfit: "0", MarginType: "isolated", IsolatedWallet: "0.00000000", UpdateTime: 1564745798938},
			{Symbol: "BTCUSDT", PositionSide: "LONG", PositionAmt: "20", EntryPrice: "6563.66500", BreakEvenPrice: "6563.6",
				UnrealizedProfit: "2850.21200", MarginType: "isolated", IsolatedWallet: "13200.70726908", UpdateTime: 1564745798938},
			{Symbol: "BTCUSDT", PositionSide: "SHORT", PositionAmt: "-10", EntryPrice: "6563.86000", BreakEvenPrice: "6563.6",
				UnrealizedProfit: "-1423.15600", MarginType: "isolated", IsolatedWallet: "6570.42511771", UpdateTime: 1564745798938},
		},
	}
	wantAccountFunding = exchange.AccountUpdate{
		EventTime: 1791384000012, TransactTime: 1791384000010, Reason: "FUNDING_FEE",
		Balances: []exchange.Balance{
			{Asset: "USDT", WalletBalance: "5012.33918210", CrossWalletBalance: "5012.33918210", UpdateTime: 1791384000010},
		},
		Positions: []exchange.Position{},
	}
	wantOrderDoc = exchange.OrderUpdate{
		EventTime: 1568879465651, TransactTime: 1568879465650, Symbol: "BTCUSDT", ClientOrderID: "TEST",
		Side: "SELL", Type: "TRAILING_STOP_MARKET", TimeInForce: "GTC", OrigQty: "0.001", Price: "0",
		AvgPrice: "0", StopPrice: "7103.04", ExecutionType: "NEW", Status: "NEW", OrderID: 8886774,
		LastFilledQty: "0", CumQty: "0", LastFilledPrice: "0", Commission: "0", CommissionAsset: "USDT",
		TradeID: 0, ReduceOnly: false, PositionSide: "LONG", RealizedProfit: "0",
	}
	expiredKey = "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"
)

func TestDecodeUserEventGolden(t *testing.T) {
	tests := []struct {
		file string
		want exchange.UserEvent
	}{
		{"ws_account_update.json", exchange.UserEvent{Kind: exchange.UserAccountUpdate, EventTime: 1564745798939, Account: wantAccountDoc}},
		{"ws_account_update_funding.json", exchange.UserEvent{Kind: exchange.UserAccountUpdate, EventTime: 1791384000012, Account: wantAccountFunding}},
		{"ws_order_trade_update.json", exchange.UserEvent{Kind: exchange.UserOrderUpdate, EventTime: 1568879465651, Order: wantOrderDoc}},
		{"ws_listen_key_expired.json", exchange.UserEvent{Kind: exchange.UserListenKeyExpired, EventTime: 1736996475556, ListenKey: expiredKey}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readFixture(t, tt.file)
			got, err := DecodeUserEvent(raw)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("raw payload (-want +got):\n%s", d)
			}
			// The same payload in a combined envelope decodes the same.
			env := `{"stream":"` + expiredKey + `","data":` + string(raw) + `}`
			got, err = DecodeUserEvent([]byte(env))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("envelope (-want +got):\n%s", d)
			}
		})
	}
}

func TestDecodeUserEventVariants(t *testing.T) {
	order := string(readFixture(t, "ws_order_trade_update.json"))
	account := string(readFixture(t, "ws_account_update.json"))
	t.Run("numbers as strings and decimals as numbers", func(t *testing.T) {
		s := strings.NewReplacer(`"E":1568879465651`, `"E":"1568879465651"`, `"i":8886774`, `"i":"8886774"`,
			`"q":"0.001"`, `"q":0.001`, `"R":false`, `"R":"false"`).Replace(order)
		ev, err := DecodeUserEvent([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(wantOrderDoc, ev.Order); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("listenKeyExpired with numeric E and without key", func(t *testing.T) {
		ev, err := DecodeUserEvent([]byte(`{"e":"listenKeyExpired","E":1736996475556}`))
		if err != nil || ev.Kind != exchange.UserListenKeyExpired || ev.EventTime != 1736996475556 || ev.ListenKey != "" {
			t.Errorf("got %+v, %v", ev, err)
		}
	})
	t.Run("commission absent", func(t *testing.T) {
		s := strings.NewReplacer(`"N":"USDT",`, ``, `"n":"0",`, ``).Replace(order)
		ev, err := DecodeUserEvent([]byte(s))
		if err != nil || ev.Order.Commission != "" || ev.Order.CommissionAsset != "" {
			t.Errorf("got %+v, %v", ev.Order, err)
		}
	})
	t.Run("margin type normalised", func(t *testing.T) {
		ev, err := DecodeUserEvent([]byte(strings.ReplaceAll(account, `"mt":"isolated"`, `"mt":"ISOLATED"`)))
		if err != nil || ev.Account.Positions[1].MarginType != "isolated" {
			t.Errorf("got %+v, %v", ev, err)
		}
	})
	t.Run("position-only update without B", func(t *testing.T) {
		ev, err := DecodeUserEvent([]byte(`{"e":"ACCOUNT_UPDATE","E":2,"T":1,"a":{"m":"MARGIN_TYPE_CHANGE","P":[]}}`))
		if err != nil || ev.Account.Balances == nil || len(ev.Account.Balances) != 0 {
			t.Errorf("got %+v, %v", ev, err)
		}
	})
	t.Run("case-sensitive keys: x and X are different", func(t *testing.T) {
		// Dropping "X" must not let "x" stand in for it.
		s := strings.Replace(order, `"X":"NEW",`, ``, 1)
		if _, err := DecodeUserEvent([]byte(s)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `"X"`) {
			t.Errorf("err = %v, want missing X", err)
		}
	})
}

func TestDecodeUserEventErrors(t *testing.T) {
	order := string(readFixture(t, "ws_order_trade_update.json"))
	account := string(readFixture(t, "ws_account_update.json"))
	tests := []struct {
		name    string
		in      string
		unknown bool
	}{
		{"unknown type", `{"e":"ACCOUNT_CONFIG_UPDATE","E":1,"T":1,"ac":{"s":"BTCUSDT","l":25}}`, true},
		{"strategy update", `{"e":"STRATEGY_UPDATE","T":1,"E":1,"su":{}}`, true},
		{"trade lite", `{"stream":"k","data":{"e":"TRADE_LITE","E":1}}`, true},
		{"control reply", `{"result":null,"id":1}`, true},
		{"invalid JSON", `{"e":"ACCOUNT_UPDATE"`, false},
		{"not an object", `[1,2]`, false},
		{"no e", `{"E":1}`, false},
		{"envelope without data", `{"stream":"abc"}`, false},
		{"envelope data array", `{"stream":"abc","data":[]}`, false},
		{"missing a", `{"e":"ACCOUNT_UPDATE","E":1,"T":1}`, false},
		{"missing m", `{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"B":[]}}`, false},
		{"B not array", `{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"ORDER","B":{}}}`, false},
		{"missing bep", strings.Replace(account, `"bep":"6563.6",`, ``, 1), false},
		{"bad decimal", strings.Replace(account, `"wb":"122624.12345678"`, `"wb":"12x"`, 1), false},
		{"bool decimal", strings.Replace(account, `"pa":"20"`, `"pa":true`, 1), false},
		{"bad symbol", strings.Replace(account, `"s":"BTCUSDT","pa":"20"`, `"s":"","pa":"20"`, 1), false},
		{"negative E", strings.Replace(order, `"E":1568879465651`, `"E":-1`, 1), false},
		{"missing o", `{"e":"ORDER_TRADE_UPDATE","E":1,"T":1}`, false},
		{"missing rp", strings.Replace(order, `"rp":"0",`, ``, 1), false},
		{"bad order id", strings.Replace(order, `"i":8886774`, `"i":"x"`, 1), false},
		{"expired without E", `{"e":"listenKeyExpired","listenKey":"abc"}`, false},
		{"expired with float E", `{"e":"listenKeyExpired","E":1.5}`, false},
		{"expired with bad key", `{"e":"listenKeyExpired","E":1,"listenKey":"a&b"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeUserEvent([]byte(tt.in))
			switch {
			case err == nil:
				t.Fatal("accepted")
			case tt.unknown && !errors.Is(err, ErrUnknownEvent):
				t.Errorf("err = %v, want ErrUnknownEvent", err)
			case !tt.unknown && !errors.Is(err, ErrMalformed):
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeAccountREST(t *testing.T) {
	bs, err := decodeAccountAssets(readFixture(t, "rest_account_v3.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantB := []exchange.Balance{
		{Asset: "USDT", WalletBalance: "23.72469206", CrossWalletBalance: "23.72469206", AvailableBalance: "23.72469206", UpdateTime: 1625474304765},
		{Asset: "USDC", WalletBalance: "103.12345678", CrossWalletBalance: "103.12345678", AvailableBalance: "126.72469206", UpdateTime: 1625474304765},
	}
	if d := cmp.Diff(wantB, bs); d != "" {
		t.Errorf("balances (-want +got):\n%s", d)
	}
	ps, err := decodePositionRisk(readFixture(t, "rest_position_risk_v3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantPositionsREST, ps); d != "" {
		t.Errorf("positions (-want +got):\n%s", d)
	}
	// v2 rows carry marginType, which wins over the derivation.
	v2 := `[{"symbol":"X","positionSide":"BOTH","positionAmt":"1","entryPrice":"1","breakEvenPrice":"1","unRealizedProfit":"0","marginType":"cross","isolatedWallet":"5","updateTime":1}]`
	ps, err = decodePositionRisk([]byte(v2))
	if err != nil || len(ps) != 1 || ps[0].MarginType != "cross" {
		t.Errorf("v2: %+v, %v", ps, err)
	}
	// isolatedMargin alone marks an isolated position.
	iso := strings.Replace(v2, `"marginType":"cross","isolatedWallet":"5"`, `"isolatedWallet":"0","isolatedMargin":"2.5"`, 1)
	ps, err = decodePositionRisk([]byte(iso))
	if err != nil || len(ps) != 1 || ps[0].MarginType != "isolated" {
		t.Errorf("isolatedMargin: %+v, %v", ps, err)
	}

	key, err := decodeListenKey(readFixture(t, "rest_listen_key.json"))
	if err != nil || key != "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1" {
		t.Errorf("listenKey %q, %v", key, err)
	}
	or, err := decodeOrderResponse(readFixture(t, "rest_order.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantOrderResponse, or); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}

	for name, in := range map[string]string{
		"account not object":   `[]`,
		"account no assets":    `{"positions":[]}`,
		"asset missing field":  `{"assets":[{"asset":"USDT","walletBalance":"1","crossWalletBalance":"1","updateTime":1}]}`,
		"positions not array":  `{}`,
		"position bad amount":  strings.Replace(v2, `"positionAmt":"1"`, `"positionAmt":"one"`, 1),
		"position missing bep": strings.Replace(v2, `"breakEvenPrice":"1",`, ``, 1),
		"listenKey missing":    `{"expiration":1}`,
		"listenKey empty":      `{"listenKey":""}`,
		"order missing id":     `{"symbol":"X","status":"NEW"}`,
	} {
		var err error
		switch {
		case strings.HasPrefix(name, "account"), strings.HasPrefix(name, "asset"):
			_, err = decodeAccountAssets([]byte(in))
		case strings.HasPrefix(name, "position"):
			_, err = decodePositionRisk([]byte(in))
		case strings.HasPrefix(name, "listenKey"):
			_, err = decodeListenKey([]byte(in))
		default:
			_, err = decodeOrderResponse([]byte(in))
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

var (
	wantPositionsREST = []exchange.Position{
		{Symbol: "ADAUSDT", PositionSide: "BOTH", PositionAmt: "30", EntryPrice: "0.385", BreakEvenPrice: "0.385077",
			UnrealizedProfit: "0.76427700", MarginType: "cross", IsolatedWallet: "0", UpdateTime: 1720736417660,
			MarkPrice: "0.41047590", LiquidationPrice: "0", IsolatedMargin: "0", Notional: "12.31427700", MarginAsset: "USDT",
			InitialMargin: "0.61571385", MaintMargin: "0.08004280", PositionInitialMargin: "0.61571385", OpenOrderInitialMargin: "0",
			ADL: ptr[int64](2), BidNotional: "0", AskNotional: "0"},
		{Symbol: "BTCUSDT", PositionSide: "SHORT", PositionAmt: "-0.010", EntryPrice: "83120.10", BreakEvenPrice: "83086.85",
			UnrealizedProfit: "0.28500000", MarginType: "isolated", IsolatedWallet: "83.12010000", UpdateTime: 1791382993519,
			MarkPrice: "83091.60", LiquidationPrice: "91644.72", IsolatedMargin: "83.40500000", Notional: "-830.91600000", MarginAsset: "USDT",
			InitialMargin: "83.09160000", MaintMargin: "3.32366400", PositionInitialMargin: "83.09160000", OpenOrderInitialMargin: "0",
			ADL: ptr[int64](1), BidNotional: "0", AskNotional: "0"},
	}
	wantOrderResponse = OrderResponse{
		OrderID: 22542179, ClientOrderID: "tc-test-1", Symbol: "BTCUSDT", Side: "BUY", PositionSide: "BOTH",
		Type: "MARKET", TimeInForce: "GTC", Status: "FILLED", Price: "0.00", AvgPrice: "83091.60000",
		OrigQty: "0.002", ExecutedQty: "0.002", CumQuote: "166.18320", UpdateTime: 1791382993600,
	}
)

func TestIsZeroDecimal(t *testing.T) {
	for in, want := range map[string]bool{
		"0": true, "0.000": true, "-0.0": true, "0E-8": true, "0e5": true,
		"1": false, "-0.001": false, "0.0000001": false, "1e-8": false, "10": false,
	} {
		if got := isZeroDecimal(in); got != want {
			t.Errorf("isZeroDecimal(%q) = %v", in, got)
		}
	}
}

func ptr[T any](v T) *T { return &v }
