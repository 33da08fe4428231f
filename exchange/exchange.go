// Package exchange is the shared vocabulary between tradecache and the
// exchanges it reads: market data types with Binance USDⓈ-M semantics, and
// the small interfaces the market-data layer consumes. Concrete clients
// (exchange/binance) and the simulated exchange (exchange/sim) depend on
// this package and on nothing else of ours.
//
// Prices and quantities stay decimal strings, exactly as the exchange sent
// them: no float rounding between the wire and Redis.
package exchange

import (
	"context"
	"encoding/json"
)

// Kline is one candlestick. OpenTime identifies it (milliseconds).
type Kline struct {
	Symbol        string `json:"s"`
	Interval      string `json:"i"`
	OpenTime      int64  `json:"t"`
	CloseTime     int64  `json:"T"`
	Open          string `json:"o"`
	High          string `json:"h"`
	Low           string `json:"l"`
	Close         string `json:"c"`
	Volume        string `json:"v"`
	QuoteVolume   string `json:"q"`
	Trades        int64  `json:"n"`
	TakerBuyBase  string `json:"V"`
	TakerBuyQuote string `json:"Q"`
	Closed        bool   `json:"x"`
}

// Ticker24h is the rolling 24-hour statistics of one symbol, with the field
// names of REST /fapi/v1/ticker/24hr.
type Ticker24h struct {
	Symbol             string `json:"symbol"`
	PriceChange        string `json:"priceChange"`
	PriceChangePercent string `json:"priceChangePercent"`
	WeightedAvgPrice   string `json:"weightedAvgPrice"`
	LastPrice          string `json:"lastPrice"`
	LastQty            string `json:"lastQty"`
	OpenPrice          string `json:"openPrice"`
	HighPrice          string `json:"highPrice"`
	LowPrice           string `json:"lowPrice"`
	Volume             string `json:"volume"`
	QuoteVolume        string `json:"quoteVolume"`
	OpenTime           int64  `json:"openTime"`
	CloseTime          int64  `json:"closeTime"`
	FirstID            int64  `json:"firstId"`
	LastID             int64  `json:"lastId"`
	Count              int64  `json:"count"`
}

// BookTicker is the best bid and ask of one symbol.
type BookTicker struct {
	Symbol       string `json:"symbol"`
	BidPrice     string `json:"bidPrice"`
	BidQty       string `json:"bidQty"`
	AskPrice     string `json:"askPrice"`
	AskQty       string `json:"askQty"`
	UpdateID     int64  `json:"updateId"`
	EventTime    int64  `json:"eventTime"`
	TransactTime int64  `json:"transactTime"`
}

// SymbolInfo is one symbol's entry of exchangeInfo. Raw keeps the whole
// entry as the exchange sent it (filters are an open set); the named fields
// are the ones tradecache itself reads.
type SymbolInfo struct {
	Symbol     string          `json:"symbol"`
	Status     string          `json:"status"`
	BaseAsset  string          `json:"baseAsset"`
	QuoteAsset string          `json:"quoteAsset"`
	Raw        json.RawMessage `json:"-"`
}

// EventKind tells which field of an Event is set.
type EventKind int

const (
	EventKline EventKind = iota + 1
	EventTicker
	EventTickers // the whole-market array (!ticker@arr)
	EventBookTicker
)

// Event is one decoded market stream message.
type Event struct {
	Kind      EventKind
	Stream    string // the stream name it arrived on ("btcusdt@kline_1m")
	EventTime int64  // E, milliseconds
	Kline     Kline
	Ticker    Ticker24h
	Tickers   []Ticker24h
	Book      BookTicker
}

// MarketREST is what the market-data layer needs of an exchange's REST API.
type MarketREST interface {
	// Klines returns klines of symbol and interval, oldest first. start and
	// end (ms) are optional (0); limit is at most 1500.
	Klines(ctx context.Context, symbol, interval string, start, end int64, limit int) ([]Kline, error)
	// Ticker24h returns the 24-hour ticker of one symbol.
	Ticker24h(ctx context.Context, symbol string) (Ticker24h, error)
	// Symbols returns exchangeInfo's symbols.
	Symbols(ctx context.Context) ([]SymbolInfo, error)
}
