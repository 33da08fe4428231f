package exchange

import (
	"context"
	"errors"
)

// Position is one position of an account, keyed by symbol and position
// side. Field names are those of REST /fapi/v3/positionRisk.
type Position struct {
	Symbol           string `json:"symbol"`
	PositionSide     string `json:"positionSide"` // BOTH, or LONG / SHORT in hedge mode
	PositionAmt      string `json:"positionAmt"`  // signed: negative is short
	EntryPrice       string `json:"entryPrice"`
	BreakEvenPrice   string `json:"breakEvenPrice"`
	UnrealizedProfit string `json:"unRealizedProfit"`
	MarginType       string `json:"marginType"` // cross | isolated
	IsolatedWallet   string `json:"isolatedWallet"`
	UpdateTime       int64  `json:"updateTime"`

	// The rest of GET /fapi/v3/positionRisk's fields (and v2's leverage),
	// under its names. The user data stream does not carry them: after a
	// stream delta they are those of the last REST seed.
	MarkPrice              string `json:"markPrice,omitempty"`
	LiquidationPrice       string `json:"liquidationPrice,omitempty"`
	IsolatedMargin         string `json:"isolatedMargin,omitempty"`
	Notional               string `json:"notional,omitempty"`
	MarginAsset            string `json:"marginAsset,omitempty"`
	InitialMargin          string `json:"initialMargin,omitempty"`
	MaintMargin            string `json:"maintMargin,omitempty"`
	PositionInitialMargin  string `json:"positionInitialMargin,omitempty"`
	OpenOrderInitialMargin string `json:"openOrderInitialMargin,omitempty"`
	ADL                    *int64 `json:"adl,omitempty"`
	BidNotional            string `json:"bidNotional,omitempty"`
	AskNotional            string `json:"askNotional,omitempty"`
	Leverage               string `json:"leverage,omitempty"` // v2 only
}

// Balance is one asset of an account. AvailableBalance comes from REST
// only; the stream leaves it empty, and the account holder carries the
// last REST value across stream deltas until the next REST seed.
type Balance struct {
	Asset              string `json:"asset"`
	WalletBalance      string `json:"walletBalance"`
	CrossWalletBalance string `json:"crossWalletBalance"`
	AvailableBalance   string `json:"availableBalance,omitempty"`
	UpdateTime         int64  `json:"updateTime"`
}

// AccountUpdate is ACCOUNT_UPDATE: the balances and the positions that
// changed (a delta, not a snapshot).
type AccountUpdate struct {
	EventTime    int64      `json:"E"`
	TransactTime int64      `json:"T"`
	Reason       string     `json:"m"`
	Balances     []Balance  `json:"B"`
	Positions    []Position `json:"P"`
}

// AccountSnapshot is a whole account as read from REST: every non-zero
// position and every balance. A position it does not list is flat.
type AccountSnapshot struct {
	Positions []Position `json:"positions"`
	Balances  []Balance  `json:"balances"`
}

// OrderUpdate is ORDER_TRADE_UPDATE's order.
type OrderUpdate struct {
	EventTime       int64  `json:"eventTime"`
	TransactTime    int64  `json:"transactTime"`
	Symbol          string `json:"symbol"`
	ClientOrderID   string `json:"clientOrderId"`
	Side            string `json:"side"`
	Type            string `json:"type"`
	TimeInForce     string `json:"timeInForce"`
	OrigQty         string `json:"origQty"`
	Price           string `json:"price"`
	AvgPrice        string `json:"avgPrice"`
	StopPrice       string `json:"stopPrice"`
	ExecutionType   string `json:"executionType"`
	Status          string `json:"status"`
	OrderID         int64  `json:"orderId"`
	LastFilledQty   string `json:"lastFilledQty"`
	CumQty          string `json:"cumQty"`
	LastFilledPrice string `json:"lastFilledPrice"`
	Commission      string `json:"commission"`
	CommissionAsset string `json:"commissionAsset"`
	TradeID         int64  `json:"tradeId"`
	ReduceOnly      bool   `json:"reduceOnly"`
	PositionSide    string `json:"positionSide"`
	RealizedProfit  string `json:"realizedProfit"`
}

// UserEventKind tells which field of a UserEvent is set.
type UserEventKind int

const (
	UserAccountUpdate UserEventKind = iota + 1
	UserOrderUpdate
	UserListenKeyExpired
)

// UserEvent is one decoded user data stream message.
type UserEvent struct {
	Kind      UserEventKind
	EventTime int64
	Account   AccountUpdate
	Order     OrderUpdate
	ListenKey string // listenKeyExpired
}

// ErrListenKeyNotFound is Binance's -1125 "This listenKey does not exist.":
// create a new one and reconnect.
var ErrListenKeyNotFound = errors.New("exchange: listenKey does not exist")

// AccountREST is what the account layer needs of an exchange's REST API.
type AccountREST interface {
	// CreateListenKey starts (or returns the account's active) user data
	// stream key.
	CreateListenKey(ctx context.Context) (string, error)
	// KeepAliveListenKey extends the key; ErrListenKeyNotFound when gone.
	KeepAliveListenKey(ctx context.Context, key string) error
	// CloseListenKey invalidates the key.
	CloseListenKey(ctx context.Context, key string) error
	// Account returns the balances and the non-zero positions (signed
	// requests to /fapi/v3/account and /fapi/v3/positionRisk).
	Account(ctx context.Context) ([]Balance, []Position, error)
}
