package binance

import (
	"fmt"
	"strings"

	"github.com/tradecache/tradecache/exchange"
)

// User data stream and account REST decoders. They follow the rules of
// the market decoders (decode.go): exact keys, unknown fields ignored,
// integers as numbers or strings, decimals kept as text, null = absent,
// mapped fields required and sanity-checked.

// Event types of the user data stream that are decoded.
const (
	EventAccountUpdate    = "ACCOUNT_UPDATE"
	EventOrderTradeUpdate = "ORDER_TRADE_UPDATE"
	EventListenKeyExpired = "listenKeyExpired"
)

// maxIDLen bounds client order ids and listenKeys taken from the wire.
const maxIDLen = 256

// DecodeUserEvent decodes one user data stream message: a raw payload
// ({"e":"ACCOUNT_UPDATE",..}) or a combined envelope
// ({"stream":"<listenKey>","data":{..}}). It decodes ACCOUNT_UPDATE,
// ORDER_TRADE_UPDATE and listenKeyExpired (whose E may be a string).
// Other event types (ACCOUNT_CONFIG_UPDATE, TRADE_LITE, STRATEGY_UPDATE…)
// and control replies return an error wrapping ErrUnknownEvent; anything
// else that fails returns an error wrapping ErrMalformed.
//
// ACCOUNT_UPDATE is a delta: Positions holds only the positions that
// changed (none for a cross FUNDING_FEE). Balances and Positions are
// never nil; each row's UpdateTime is the event's T, AvailableBalance is
// empty (the stream does not carry it) and MarginType is lower case.
func DecodeUserEvent(b []byte) (exchange.UserEvent, error) {
	_, ev, err := decodeUserMessage(b)
	return ev, err
}

// decodeUserMessage also returns the payload: the envelope's data, or b.
func decodeUserMessage(b []byte) ([]byte, exchange.UserEvent, error) {
	if err := validJSON(b); err != nil {
		return nil, exchange.UserEvent{}, err
	}
	data, err := userPayload(b)
	if err != nil {
		return nil, exchange.UserEvent{}, err
	}
	ev, err := decodeUserPayload(data)
	return data, ev, err
}

// userPayload unwraps a combined envelope and classifies control replies.
func userPayload(b []byte) ([]byte, error) {
	var (
		hasStream, hasData, hasE, hasID, hasReply bool
		stream                                    string
		data                                      []byte
	)
	err := members(b, func(key, val []byte) error {
		var err error
		switch string(key) {
		case "stream":
			hasStream = true
			stream, err = strVal(val)
		case "data":
			hasData, data = true, val
		case "e":
			hasE = true
		case "id":
			hasID = true
		case "result", "error":
			hasReply = true
		}
		if err != nil {
			return fieldErr("message", key, err)
		}
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return nil, malformed("message is not a JSON object")
		}
		return nil, asMalformed("message", err)
	}
	switch {
	case hasE:
		return b, nil
	case hasStream && hasData:
		if !validStreamName(stream) {
			return nil, malformed("bad stream name %q", stream)
		}
		return data, nil
	case hasStream || hasData:
		return nil, malformed("envelope without stream or data")
	case hasID && hasReply:
		return nil, fmt.Errorf("%w: control reply", ErrUnknownEvent)
	}
	return nil, malformed(`event without "e"`)
}

func decodeUserPayload(data []byte) (exchange.UserEvent, error) {
	typ, err := eventType(data)
	if err != nil {
		return exchange.UserEvent{}, err
	}
	var ev exchange.UserEvent
	switch typ {
	case EventAccountUpdate:
		ev.Account, err = decodeAccountUpdate(data)
		ev.Kind, ev.EventTime = exchange.UserAccountUpdate, ev.Account.EventTime
	case EventOrderTradeUpdate:
		ev.Order, err = decodeOrderUpdate(data)
		ev.Kind, ev.EventTime = exchange.UserOrderUpdate, ev.Order.EventTime
	case EventListenKeyExpired:
		ev.EventTime, ev.ListenKey, err = decodeListenKeyExpired(data)
		ev.Kind = exchange.UserListenKeyExpired
	default:
		return exchange.UserEvent{}, fmt.Errorf("%w: user event type %q", ErrUnknownEvent, typ)
	}
	if err != nil {
		return exchange.UserEvent{}, err
	}
	return ev, nil
}

func decodeAccountUpdate(b []byte) (exchange.AccountUpdate, error) {
	var au exchange.AccountUpdate
	var err error
	var araw []byte
	au.EventTime, au.TransactTime, araw, err = decodeUserEnvelope(b, EventAccountUpdate, "ACCOUNT_UPDATE", "a")
	if err != nil {
		return exchange.AccountUpdate{}, err
	}
	if au.EventTime < 0 || au.TransactTime < 0 {
		return exchange.AccountUpdate{}, malformed("ACCOUNT_UPDATE negative time")
	}

	// a: m is required; B and P may be absent (P is absent on a cross
	// FUNDING_FEE; both are deltas).
	var braw, praw []byte
	var hasReason bool
	err = members(araw, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		switch string(key) {
		case "m":
			au.Reason, err = strVal(val)
			hasReason = true
		case "B":
			braw = val
		case "P":
			praw = val
		}
		if err != nil {
			return fieldErr("ACCOUNT_UPDATE.a", key, err)
		}
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return exchange.AccountUpdate{}, malformed(`ACCOUNT_UPDATE "a" is not an object`)
		}
		return exchange.AccountUpdate{}, asMalformed("ACCOUNT_UPDATE.a", err)
	}
	if !hasReason {
		return exchange.AccountUpdate{}, malformed(`ACCOUNT_UPDATE.a field "m": %v`, errMissing)
	}
	if !validName(au.Reason) {
		return exchange.AccountUpdate{}, malformed("ACCOUNT_UPDATE reason %q", au.Reason)
	}
	au.Balances = []exchange.Balance{}
	if braw != nil {
		err = elements(braw, func(val []byte) error {
			bal, err := decodeBalanceWS(val)
			if err != nil {
				return err
			}
			bal.UpdateTime = au.TransactTime
			au.Balances = append(au.Balances, bal)
			return nil
		})
		if err != nil {
			if err == errNotArray {
				return exchange.AccountUpdate{}, malformed(`ACCOUNT_UPDATE "B" is not an array`)
			}
			return exchange.AccountUpdate{}, asMalformed("ACCOUNT_UPDATE.a.B", err)
		}
	}
	au.Positions = []exchange.Position{}
	if praw != nil {
		err = elements(praw, func(val []byte) error {
			p, err := decodePositionWS(val)
			if err != nil {
				return err
			}
			p.UpdateTime = au.TransactTime
			au.Positions = append(au.Positions, p)
			return nil
		})
		if err != nil {
			if err == errNotArray {
				return exchange.AccountUpdate{}, malformed(`ACCOUNT_UPDATE "P" is not an array`)
			}
			return exchange.AccountUpdate{}, asMalformed("ACCOUNT_UPDATE.a.P", err)
		}
	}
	return au, nil
}

var balanceWSFields = []string{"a", "wb", "cw"}

func decodeBalanceWS(b []byte) (exchange.Balance, error) {
	var bal exchange.Balance
	var seen uint32
	err := members(b, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "a":
			bal.Asset, err = strVal(val)
			bit = 1 << 0
		case "wb":
			bal.WalletBalance, err = decVal(val)
			bit = 1 << 1
		case "cw":
			bal.CrossWalletBalance, err = decVal(val)
			bit = 1 << 2
		}
		if err != nil {
			return fieldErr("balance", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return bal, malformed("balance is not an object")
		}
		return bal, asMalformed("balance", err)
	}
	if err := required("balance", seen, 1<<len(balanceWSFields)-1, balanceWSFields); err != nil {
		return exchange.Balance{}, err
	}
	if !validName(bal.Asset) {
		return exchange.Balance{}, malformed("balance asset %q", bal.Asset)
	}
	return bal, nil
}

var positionWSFields = []string{"s", "pa", "ep", "bep", "up", "mt", "iw", "ps"}

func decodePositionWS(b []byte) (exchange.Position, error) {
	var p exchange.Position
	var seen uint32
	err := members(b, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "s":
			p.Symbol, err = strVal(val)
			bit = 1 << 0
		case "pa":
			p.PositionAmt, err = decVal(val)
			bit = 1 << 1
		case "ep":
			p.EntryPrice, err = decVal(val)
			bit = 1 << 2
		case "bep":
			p.BreakEvenPrice, err = decVal(val)
			bit = 1 << 3
		case "up":
			p.UnrealizedProfit, err = decVal(val)
			bit = 1 << 4
		case "mt":
			p.MarginType, err = strVal(val)
			bit = 1 << 5
		case "iw":
			p.IsolatedWallet, err = decVal(val)
			bit = 1 << 6
		case "ps":
			p.PositionSide, err = strVal(val)
			bit = 1 << 7
		}
		if err != nil {
			return fieldErr("position", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return p, malformed("position is not an object")
		}
		return p, asMalformed("position", err)
	}
	if err := required("position", seen, 1<<len(positionWSFields)-1, positionWSFields); err != nil {
		return exchange.Position{}, err
	}
	p.MarginType = strings.ToLower(p.MarginType)
	if err := checkPosition(&p); err != nil {
		return exchange.Position{}, err
	}
	return p, nil
}

func checkPosition(p *exchange.Position) error {
	switch {
	case !validName(p.Symbol):
		return malformed("position symbol %q", p.Symbol)
	case !validName(p.PositionSide):
		return malformed("position side %q", p.PositionSide)
	case !validName(p.MarginType):
		return malformed("position margin type %q", p.MarginType)
	case p.UpdateTime < 0:
		return malformed("position update time %d", p.UpdateTime)
	}
	return nil
}

// orderFields are the required members of ORDER_TRADE_UPDATE's "o" (N and
// n, the commission, are only pushed when there is one).
var orderFields = []string{"s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "i", "l", "z", "L", "t", "R", "ps", "rp"}

func decodeOrderUpdate(b []byte) (exchange.OrderUpdate, error) {
	var o exchange.OrderUpdate
	var err error
	var oraw []byte
	o.EventTime, o.TransactTime, oraw, err = decodeUserEnvelope(b, EventOrderTradeUpdate, "ORDER_TRADE_UPDATE", "o")
	if err != nil {
		return exchange.OrderUpdate{}, err
	}
	var seen uint32
	err = members(oraw, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "s":
			o.Symbol, err = strVal(val)
			bit = 1 << 0
		case "c":
			o.ClientOrderID, err = strVal(val)
			bit = 1 << 1
		case "S":
			o.Side, err = strVal(val)
			bit = 1 << 2
		case "o":
			o.Type, err = strVal(val)
			bit = 1 << 3
		case "f":
			o.TimeInForce, err = strVal(val)
			bit = 1 << 4
		case "q":
			o.OrigQty, err = decVal(val)
			bit = 1 << 5
		case "p":
			o.Price, err = decVal(val)
			bit = 1 << 6
		case "ap":
			o.AvgPrice, err = decVal(val)
			bit = 1 << 7
		case "sp":
			o.StopPrice, err = decVal(val)
			bit = 1 << 8
		case "x":
			o.ExecutionType, err = strVal(val)
			bit = 1 << 9
		case "X":
			o.Status, err = strVal(val)
			bit = 1 << 10
		case "i":
			o.OrderID, err = intVal(val)
			bit = 1 << 11
		case "l":
			o.LastFilledQty, err = decVal(val)
			bit = 1 << 12
		case "z":
			o.CumQty, err = decVal(val)
			bit = 1 << 13
		case "L":
			o.LastFilledPrice, err = decVal(val)
			bit = 1 << 14
		case "t":
			o.TradeID, err = intVal(val)
			bit = 1 << 15
		case "R":
			o.ReduceOnly, err = boolVal(val)
			bit = 1 << 16
		case "ps":
			o.PositionSide, err = strVal(val)
			bit = 1 << 17
		case "rp":
			o.RealizedProfit, err = decVal(val)
			bit = 1 << 18
		case "n":
			o.Commission, err = decVal(val)
		case "N":
			o.CommissionAsset, err = strVal(val)
		}
		if err != nil {
			return fieldErr("order", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return exchange.OrderUpdate{}, malformed(`ORDER_TRADE_UPDATE "o" is not an object`)
		}
		return exchange.OrderUpdate{}, asMalformed("order", err)
	}
	if err := required("order", seen, 1<<len(orderFields)-1, orderFields); err != nil {
		return exchange.OrderUpdate{}, err
	}
	if err := checkOrder(&o); err != nil {
		return exchange.OrderUpdate{}, err
	}
	return o, nil
}

func checkOrder(o *exchange.OrderUpdate) error {
	switch {
	case o.EventTime < 0 || o.TransactTime < 0:
		return malformed("order negative time")
	case !validName(o.Symbol):
		return malformed("order symbol %q", o.Symbol)
	case !validText(o.ClientOrderID, maxIDLen):
		return malformed("order client id %q", o.ClientOrderID)
	case !validName(o.Side), !validName(o.Type), !validName(o.TimeInForce),
		!validName(o.ExecutionType), !validName(o.Status), !validName(o.PositionSide):
		return malformed("order side/type/tif/x/X/ps %q/%q/%q/%q/%q/%q",
			o.Side, o.Type, o.TimeInForce, o.ExecutionType, o.Status, o.PositionSide)
	case o.OrderID < 0 || o.TradeID < 0:
		return malformed("order negative id")
	case o.CommissionAsset != "" && !validName(o.CommissionAsset):
		return malformed("order commission asset %q", o.CommissionAsset)
	}
	return nil
}

// decodeListenKeyExpired decodes {"e":"listenKeyExpired","E":..,
// "listenKey":".."}. E is a number or a string; listenKey is optional
// (the stream knows which key it connected with).
func decodeListenKeyExpired(b []byte) (int64, string, error) {
	var (
		e     int64
		key   string
		seenE bool
	)
	err := members(b, func(key2, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		switch string(key2) {
		case "e":
			err = checkType(val, EventListenKeyExpired)
		case "E":
			e, err = intVal(val)
			seenE = true
		case "listenKey":
			key, err = strVal(val)
		}
		if err != nil {
			if isKnown(err) {
				return err
			}
			return fieldErr(EventListenKeyExpired, key2, err)
		}
		return nil
	})
	if err != nil {
		return 0, "", asMalformed(EventListenKeyExpired, err)
	}
	if !seenE {
		return 0, "", malformed(`%s field "E": %v`, EventListenKeyExpired, errMissing)
	}
	if e < 0 {
		return 0, "", malformed("%s event time %d", EventListenKeyExpired, e)
	}
	if key != "" && !validListenKey(key) {
		return 0, "", malformed("%s: bad listenKey", EventListenKeyExpired)
	}
	return e, key, nil
}

// validListenKey: non-empty, bounded, printable, nothing that would need
// escaping in a URL query.
func validListenKey(k string) bool {
	return validText(k, maxIDLen) && !strings.ContainsAny(k, "&#?/%+=\"\\")
}

// isZeroDecimal reports whether the (valid) decimal s is zero: "0",
// "0.000", "-0.0", "0E-8".
func isZeroDecimal(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 'e' || c == 'E':
			return true
		case c >= '1' && c <= '9':
			return false
		}
	}
	return true
}

// REST account decoders.

var balanceRESTFields = []string{"asset", "walletBalance", "crossWalletBalance", "availableBalance", "updateTime"}

// decodeAccountAssets decodes the assets of GET /fapi/v3/account.
func decodeAccountAssets(b []byte) ([]exchange.Balance, error) {
	if err := validJSON(b); err != nil {
		return nil, err
	}
	var assets []byte
	err := members(b, func(key, val []byte) error {
		if string(key) == "assets" && !isNull(val) {
			assets = val
		}
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return nil, malformed("account is not an object")
		}
		return nil, asMalformed("account", err)
	}
	if assets == nil {
		return nil, malformed(`account without "assets"`)
	}
	out := []exchange.Balance{}
	err = elements(assets, func(val []byte) error {
		var bal exchange.Balance
		var seen uint32
		err := members(val, func(key, v []byte) error {
			if isNull(v) {
				return nil
			}
			var err error
			var bit uint32
			switch string(key) {
			case "asset":
				bal.Asset, err = strVal(v)
				bit = 1 << 0
			case "walletBalance":
				bal.WalletBalance, err = decVal(v)
				bit = 1 << 1
			case "crossWalletBalance":
				bal.CrossWalletBalance, err = decVal(v)
				bit = 1 << 2
			case "availableBalance":
				bal.AvailableBalance, err = decVal(v)
				bit = 1 << 3
			case "updateTime":
				bal.UpdateTime, err = intVal(v)
				bit = 1 << 4
			}
			if err != nil {
				return fieldErr("asset", key, err)
			}
			seen |= bit
			return nil
		})
		if err != nil {
			if err == errNotObject {
				return malformed("asset is not an object")
			}
			return asMalformed("asset", err)
		}
		if err := required("asset", seen, 1<<len(balanceRESTFields)-1, balanceRESTFields); err != nil {
			return err
		}
		if !validName(bal.Asset) || bal.UpdateTime < 0 {
			return malformed("asset %q updateTime %d", bal.Asset, bal.UpdateTime)
		}
		out = append(out, bal)
		return nil
	})
	if err != nil {
		if err == errNotArray {
			return nil, malformed("account assets is not an array")
		}
		return nil, asMalformed("account assets", err)
	}
	return out, nil
}

var positionRESTFields = []string{"symbol", "positionSide", "positionAmt", "entryPrice", "breakEvenPrice",
	"unRealizedProfit", "isolatedWallet", "updateTime"}

// decodePositionRisk decodes GET /fapi/v3/positionRisk (also v2), every
// field of it, and keeps the non-zero positions. MarginType: marginType when sent (v2),
// else "isolated" if isolatedWallet or isolatedMargin is non-zero, else
// "cross".
func decodePositionRisk(b []byte) ([]exchange.Position, error) {
	if err := validJSON(b); err != nil {
		return nil, err
	}
	out := []exchange.Position{}
	err := elements(b, func(val []byte) error {
		var p exchange.Position
		var isoMargin string
		var seen uint32
		err := members(val, func(key, v []byte) error {
			if isNull(v) {
				return nil
			}
			var err error
			var bit uint32
			switch string(key) {
			case "symbol":
				p.Symbol, err = strVal(v)
				bit = 1 << 0
			case "positionSide":
				p.PositionSide, err = strVal(v)
				bit = 1 << 1
			case "positionAmt":
				p.PositionAmt, err = decVal(v)
				bit = 1 << 2
			case "entryPrice":
				p.EntryPrice, err = decVal(v)
				bit = 1 << 3
			case "breakEvenPrice":
				p.BreakEvenPrice, err = decVal(v)
				bit = 1 << 4
			case "unRealizedProfit":
				p.UnrealizedProfit, err = decVal(v)
				bit = 1 << 5
			case "isolatedWallet":
				p.IsolatedWallet, err = decVal(v)
				bit = 1 << 6
			case "updateTime":
				p.UpdateTime, err = intVal(v)
				bit = 1 << 7
			case "marginType":
				p.MarginType, err = strVal(v)
			case "isolatedMargin":
				isoMargin, err = decVal(v)
				p.IsolatedMargin = isoMargin
			case "markPrice":
				p.MarkPrice, err = decVal(v)
			case "liquidationPrice":
				p.LiquidationPrice, err = decVal(v)
			case "notional":
				p.Notional, err = decVal(v)
			case "marginAsset":
				p.MarginAsset, err = strVal(v)
			case "initialMargin":
				p.InitialMargin, err = decVal(v)
			case "maintMargin":
				p.MaintMargin, err = decVal(v)
			case "positionInitialMargin":
				p.PositionInitialMargin, err = decVal(v)
			case "openOrderInitialMargin":
				p.OpenOrderInitialMargin, err = decVal(v)
			case "bidNotional":
				p.BidNotional, err = decVal(v)
			case "askNotional":
				p.AskNotional, err = decVal(v)
			case "leverage":
				p.Leverage, err = decVal(v)
			case "adl":
				var n int64
				if n, err = intVal(v); err == nil {
					p.ADL = &n
				}
			}
			if err != nil {
				return fieldErr("position", key, err)
			}
			seen |= bit
			return nil
		})
		if err != nil {
			if err == errNotObject {
				return malformed("position is not an object")
			}
			return asMalformed("position", err)
		}
		if err := required("position", seen, 1<<len(positionRESTFields)-1, positionRESTFields); err != nil {
			return err
		}
		if p.MarginType == "" {
			p.MarginType = "cross"
			if !isZeroDecimal(p.IsolatedWallet) || (isoMargin != "" && !isZeroDecimal(isoMargin)) {
				p.MarginType = "isolated"
			}
		}
		p.MarginType = strings.ToLower(p.MarginType)
		if err := checkPosition(&p); err != nil {
			return err
		}
		if !isZeroDecimal(p.PositionAmt) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		if err == errNotArray {
			return nil, malformed("positionRisk is not an array")
		}
		return nil, asMalformed("positionRisk", err)
	}
	return out, nil
}

// decodeListenKey decodes {"listenKey":".."} (other members ignored).
func decodeListenKey(b []byte) (string, error) {
	if err := validJSON(b); err != nil {
		return "", err
	}
	var key string
	var found bool
	err := members(b, func(k, val []byte) error {
		if string(k) != "listenKey" {
			return nil
		}
		var err error
		key, err = strVal(val)
		if err != nil {
			return fieldErr("listenKey", k, err)
		}
		found = true
		return nil
	})
	if err != nil {
		return "", asMalformed("listenKey", err)
	}
	if !found || !validListenKey(key) {
		return "", malformed("no valid listenKey")
	}
	return key, nil
}

var orderRESTFields = []string{"orderId", "clientOrderId", "symbol", "side", "type", "status", "origQty", "updateTime"}

// decodeOrderResponse decodes the reply of POST /fapi/v1/order.
func decodeOrderResponse(b []byte) (OrderResponse, error) {
	if err := validJSON(b); err != nil {
		return OrderResponse{}, err
	}
	var o OrderResponse
	var seen uint32
	err := members(b, func(key, v []byte) error {
		if isNull(v) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "orderId":
			o.OrderID, err = intVal(v)
			bit = 1 << 0
		case "clientOrderId":
			o.ClientOrderID, err = strVal(v)
			bit = 1 << 1
		case "symbol":
			o.Symbol, err = strVal(v)
			bit = 1 << 2
		case "side":
			o.Side, err = strVal(v)
			bit = 1 << 3
		case "type":
			o.Type, err = strVal(v)
			bit = 1 << 4
		case "status":
			o.Status, err = strVal(v)
			bit = 1 << 5
		case "origQty":
			o.OrigQty, err = decVal(v)
			bit = 1 << 6
		case "updateTime":
			o.UpdateTime, err = intVal(v)
			bit = 1 << 7
		case "positionSide":
			o.PositionSide, err = strVal(v)
		case "timeInForce":
			o.TimeInForce, err = strVal(v)
		case "price":
			o.Price, err = decVal(v)
		case "avgPrice":
			o.AvgPrice, err = decVal(v)
		case "executedQty":
			o.ExecutedQty, err = decVal(v)
		case "cumQuote":
			o.CumQuote, err = decVal(v)
		case "reduceOnly":
			o.ReduceOnly, err = boolVal(v)
		}
		if err != nil {
			return fieldErr("order", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return OrderResponse{}, malformed("order is not an object")
		}
		return OrderResponse{}, asMalformed("order", err)
	}
	if err := required("order", seen, 1<<len(orderRESTFields)-1, orderRESTFields); err != nil {
		return OrderResponse{}, err
	}
	if !validName(o.Symbol) || o.OrderID < 0 || o.UpdateTime < 0 || !validText(o.ClientOrderID, maxIDLen) {
		return OrderResponse{}, malformed("order %q id %d", o.Symbol, o.OrderID)
	}
	return o, nil
}

// decodeUserEnvelope reads the members ACCOUNT_UPDATE and
// ORDER_TRADE_UPDATE share — e (must be event), E, T — and returns the
// raw value of the nested object (inner: "a" or "o"); all four are required.
func decodeUserEnvelope(b []byte, event, what, inner string) (eventTime, transactTime int64, raw []byte, err error) {
	fields := []string{"e", "E", "T", inner}
	var seen uint32
	err = members(b, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "e":
			err, bit = checkType(val, event), 1<<0
		case "E":
			eventTime, err = intVal(val)
			bit = 1 << 1
		case "T":
			transactTime, err = intVal(val)
			bit = 1 << 2
		case inner:
			raw, bit = val, 1<<3
		}
		if err != nil {
			if isKnown(err) {
				return err
			}
			return fieldErr(what, key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return 0, 0, nil, asMalformed(what, err)
	}
	if err := required(what, seen, 1<<len(fields)-1, fields); err != nil {
		return 0, 0, nil, err
	}
	return eventTime, transactTime, raw, nil
}
