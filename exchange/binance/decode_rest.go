package binance

import (
	"encoding/json"
	"fmt"

	"github.com/tradecache/tradecache/exchange"
)

// DecodeKlinesREST decodes the body of GET /fapi/v1/klines: an array of
// 12-element arrays [openTime,"o","h","l","c","v",closeTime,"q",n,"V","Q",
// "ignore"]. REST klines carry neither symbol nor interval, so the
// request's are set on each kline. nowMs is the time the request was made
// (ms): a kline is Closed only when its CloseTime is before it, so the
// still-open last bar of a most-recent request is not marked closed.
func DecodeKlinesREST(b []byte, symbol, interval string, nowMs int64) ([]exchange.Kline, error) {
	if !validName(symbol) || !validName(interval) {
		return nil, malformed("bad symbol %q or interval %q", symbol, interval)
	}
	if err := validJSON(b); err != nil {
		return nil, err
	}
	out := []exchange.Kline{}
	row := 0
	err := elements(b, func(val []byte) error {
		k := exchange.Kline{Symbol: symbol, Interval: interval}
		i := 0
		err := elements(val, func(v []byte) error {
			var err error
			switch i {
			case 0:
				k.OpenTime, err = intVal(v)
			case 1:
				k.Open, err = decVal(v)
			case 2:
				k.High, err = decVal(v)
			case 3:
				k.Low, err = decVal(v)
			case 4:
				k.Close, err = decVal(v)
			case 5:
				k.Volume, err = decVal(v)
			case 6:
				k.CloseTime, err = intVal(v)
			case 7:
				k.QuoteVolume, err = decVal(v)
			case 8:
				k.Trades, err = intVal(v)
			case 9:
				k.TakerBuyBase, err = decVal(v)
			case 10:
				k.TakerBuyQuote, err = decVal(v)
			}
			if err != nil {
				return malformed("kline %d element %d: %v", row, i, err)
			}
			i++
			return nil
		})
		if err != nil {
			if err == errNotArray {
				return malformed("kline %d is not an array", row)
			}
			return asMalformed(fmt.Sprintf("kline %d", row), err)
		}
		if i < 11 {
			return malformed("kline %d has %d elements, want 12", row, i)
		}
		if err := checkKline(&k); err != nil {
			return err
		}
		k.Closed = k.CloseTime < nowMs
		out = append(out, k)
		row++
		return nil
	})
	if err != nil {
		if err == errNotArray {
			return nil, malformed("klines body is not an array")
		}
		return nil, asMalformed("klines", err)
	}
	return out, nil
}

var tickerRESTFields = []string{"symbol", "priceChange", "priceChangePercent", "weightedAvgPrice",
	"lastPrice", "lastQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
	"openTime", "closeTime", "firstId", "lastId", "count"}

// decodeTickerREST decodes one object of GET /fapi/v1/ticker/24hr.
func decodeTickerREST(b []byte) (exchange.Ticker24h, error) {
	var t exchange.Ticker24h
	var seen uint32
	err := members(b, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "symbol":
			t.Symbol, err = strVal(val)
			bit = 1 << 0
		case "priceChange":
			t.PriceChange, err = decVal(val)
			bit = 1 << 1
		case "priceChangePercent":
			t.PriceChangePercent, err = decVal(val)
			bit = 1 << 2
		case "weightedAvgPrice":
			t.WeightedAvgPrice, err = decVal(val)
			bit = 1 << 3
		case "lastPrice":
			t.LastPrice, err = decVal(val)
			bit = 1 << 4
		case "lastQty":
			t.LastQty, err = decVal(val)
			bit = 1 << 5
		case "openPrice":
			t.OpenPrice, err = decVal(val)
			bit = 1 << 6
		case "highPrice":
			t.HighPrice, err = decVal(val)
			bit = 1 << 7
		case "lowPrice":
			t.LowPrice, err = decVal(val)
			bit = 1 << 8
		case "volume":
			t.Volume, err = decVal(val)
			bit = 1 << 9
		case "quoteVolume":
			t.QuoteVolume, err = decVal(val)
			bit = 1 << 10
		case "openTime":
			t.OpenTime, err = intVal(val)
			bit = 1 << 11
		case "closeTime":
			t.CloseTime, err = intVal(val)
			bit = 1 << 12
		case "firstId":
			t.FirstID, err = intVal(val)
			bit = 1 << 13
		case "lastId":
			t.LastID, err = intVal(val)
			bit = 1 << 14
		case "count":
			t.Count, err = intVal(val)
			bit = 1 << 15
		}
		if err != nil {
			return fieldErr("ticker", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return t, malformed("ticker is not an object")
		}
		return t, asMalformed("ticker", err)
	}
	if err := required("ticker", seen, 1<<len(tickerRESTFields)-1, tickerRESTFields); err != nil {
		return exchange.Ticker24h{}, err
	}
	if err := checkTicker(&t); err != nil {
		return exchange.Ticker24h{}, err
	}
	return t, nil
}

// decodeTickersREST decodes the array form of GET /fapi/v1/ticker/24hr.
func decodeTickersREST(b []byte) ([]exchange.Ticker24h, error) {
	out := []exchange.Ticker24h{}
	err := elements(b, func(val []byte) error {
		t, err := decodeTickerREST(val)
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		if err == errNotArray {
			return nil, malformed("tickers body is not an array")
		}
		return nil, asMalformed("tickers", err)
	}
	return out, nil
}

// decodeExchangeInfo decodes the symbols of GET /fapi/v1/exchangeInfo.
// Each SymbolInfo keeps its entry verbatim in Raw (a copy, so that the
// 1 MB body is not pinned by a few symbols); filters are not interpreted
// here (an open set; see FilterValue).
func decodeExchangeInfo(b []byte) ([]exchange.SymbolInfo, error) {
	var symbols []byte
	err := members(b, func(key, val []byte) error {
		if string(key) == "symbols" {
			symbols = val
		}
		return nil
	})
	if err != nil {
		return nil, malformed("exchangeInfo: %v", err)
	}
	if symbols == nil {
		return nil, malformed(`exchangeInfo without "symbols"`)
	}
	out := []exchange.SymbolInfo{}
	err = elements(symbols, func(val []byte) error {
		var si exchange.SymbolInfo
		var seen uint32
		err := members(val, func(key, v []byte) error {
			if isNull(v) {
				return nil
			}
			var err error
			var bit uint32
			switch string(key) {
			case "symbol":
				si.Symbol, err = strVal(v)
				bit = 1 << 0
			case "status":
				si.Status, err = strVal(v)
				bit = 1 << 1
			case "baseAsset":
				si.BaseAsset, err = strVal(v)
			case "quoteAsset":
				si.QuoteAsset, err = strVal(v)
			}
			if err != nil {
				return fieldErr("symbol", key, err)
			}
			seen |= bit
			return nil
		})
		if err != nil {
			if err == errNotObject {
				return malformed("symbol entry is not an object")
			}
			return asMalformed("symbol", err)
		}
		if err := required("symbol", seen, 3, []string{"symbol", "status"}); err != nil {
			return err
		}
		if !validName(si.Symbol) {
			return malformed("symbol %q", si.Symbol)
		}
		si.Raw = json.RawMessage(append([]byte(nil), val...))
		out = append(out, si)
		return nil
	})
	if err != nil {
		if err == errNotArray {
			return nil, malformed("exchangeInfo symbols is not an array")
		}
		return nil, asMalformed("exchangeInfo", err)
	}
	return out, nil
}

// decodeServerTime decodes GET /fapi/v1/time {"serverTime":ms}.
func decodeServerTime(b []byte) (int64, error) {
	var ms int64
	var found bool
	err := members(b, func(key, val []byte) error {
		if string(key) != "serverTime" {
			return nil
		}
		var err error
		ms, err = intVal(val)
		if err != nil {
			return fieldErr("time", key, err)
		}
		found = true
		return nil
	})
	if err != nil {
		return 0, asMalformed("time", err)
	}
	if !found || ms <= 0 {
		return 0, malformed("time: no serverTime")
	}
	return ms, nil
}

// decodeAPIError decodes {"code":-1121,"msg":"Invalid symbol."}.
func decodeAPIError(b []byte) (code int64, msg string, ok bool) {
	if !json.Valid(b) {
		return 0, "", false
	}
	var seen int
	err := members(b, func(key, val []byte) error {
		var err error
		switch string(key) {
		case "code":
			code, err = intVal(val)
			seen++
		case "msg":
			msg, err = strVal(val)
			seen++
		}
		return err
	})
	return code, msg, err == nil && seen > 0
}

// FilterValue returns field of the filter filterType in the exchangeInfo
// entry s (from s.Raw) as text: a string's content, or a number's or
// boolean's literal ("tickSize" of PRICE_FILTER, "multiplierDecimal" of
// PERCENT_PRICE…). Filters are an open set: any filterType, including ones
// this package has never seen (POSITION_RISK_CONTROL), can be read.
func FilterValue(s exchange.SymbolInfo, filterType, field string) (string, bool) {
	if !json.Valid(s.Raw) {
		return "", false
	}
	var out string
	var found bool
	_ = members(s.Raw, func(key, val []byte) error {
		if string(key) != "filters" {
			return nil
		}
		return elements(val, func(f []byte) error {
			if found {
				return nil
			}
			var typ, value string
			var has bool
			err := members(f, func(k, v []byte) error {
				switch {
				case string(k) == "filterType":
					typ, _ = strVal(v)
				case string(k) == field:
					if t, quoted, ok := plainString(v); ok && !quoted {
						value, has = string(t), true
					} else if str, err := strVal(v); err == nil {
						value, has = str, true
					}
				}
				return nil
			})
			if err == nil && typ == filterType && has {
				out, found = value, true
			}
			return nil
		})
	})
	return out, found
}
