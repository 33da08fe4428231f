#!/usr/bin/env python3
"""Reads every key kind a tradecache deployment keeps in Redis, as a Python
process of the trading system would, and checks each value against the
format `tradecache keys kinds` documents. Exits 1 naming the first key whose
format drifted, 0 after printing one line per kind: "ok <kind> <keys>".

    REDIS_URL=redis://127.0.0.1:6379/0 python3 read_keys.py [--prefix P] [--require kind,kind]

Needs redis-py (Debian: python3-redis).
"""
import argparse
import json
import os
import sys

import redis

# DEC is a decimal number written as a JSON string ("97000.10"), the way
# the exchange sends prices and quantities: never a float.
DEC = "decimal string"

KLINE_LETTERS = {"s": str, "i": str, "t": int, "T": int, "o": DEC, "h": DEC, "l": DEC,
                 "c": DEC, "v": DEC, "q": DEC, "n": int, "V": DEC, "Q": DEC, "x": bool}
TICKER_FIELDS = {"symbol": str, "priceChange": DEC, "priceChangePercent": DEC, "weightedAvgPrice": DEC,
                 "lastPrice": DEC, "lastQty": DEC, "openPrice": DEC, "highPrice": DEC, "lowPrice": DEC,
                 "volume": DEC, "quoteVolume": DEC, "openTime": int, "closeTime": int,
                 "firstId": int, "lastId": int, "count": int}
BOOK_FIELDS = {"symbol": str, "bidPrice": DEC, "bidQty": DEC, "askPrice": DEC, "askQty": DEC,
               "updateId": int, "eventTime": int, "transactTime": int}
POSITION_FIELDS = {"symbol": str, "positionSide": str, "positionAmt": DEC, "entryPrice": DEC,
                   "unRealizedProfit": DEC, "updateTime": int}
BALANCE_FIELDS = {"asset": str, "walletBalance": DEC, "crossWalletBalance": DEC,
                  "availableBalance": DEC, "updateTime": int}
SYMBOL_FIELDS = {"symbol": str, "status": str, "baseAsset": str, "quoteAsset": str}
LEASE_FIELDS = {"node": str, "epoch": int}


class Drift(Exception):
    pass


def check_fields(key, obj, fields):
    if not isinstance(obj, dict):
        raise Drift(f"{key}: want a JSON object, got {type(obj).__name__}")
    for name, typ in fields.items():
        if name not in obj:
            raise Drift(f"{key}: field {name!r} missing in {json.dumps(obj)[:200]}")
        v = obj[name]
        if typ is DEC:
            try:
                ok = isinstance(v, str) and float(v) == float(v)
            except ValueError:
                ok = False
        else:
            ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
        if not ok:
            want = typ if typ is DEC else typ.__name__
            raise Drift(f"{key}: field {name!r} = {json.dumps(v)[:40]}, want {want}")


def load(key, raw):
    try:
        return json.loads(raw)
    except ValueError as e:
        raise Drift(f"{key}: not JSON: {e}")


def read_string(r, key):
    return r.get(key)


def kind_positions(r, key):
    ps = load(key, read_string(r, key))
    if not isinstance(ps, list):
        raise Drift(f"{key}: want a JSON array")
    for p in ps:
        check_fields(key, p, POSITION_FIELDS)
    return len(ps)


def kind_balance(r, key):
    check_fields(key, load(key, read_string(r, key)), BALANCE_FIELDS)
    if not key.rsplit(":", 1)[1].isupper():
        raise Drift(f"{key}: asset part is not upper-case")


def kind_kline(r, key):
    members = r.zrange(key, 0, -1, withscores=True)
    if not members:
        raise Drift(f"{key}: empty sorted set")
    last = None
    for member, score in members:
        k = load(key, member)
        check_fields(key, k, KLINE_LETTERS)
        if int(score) != k["t"]:
            raise Drift(f"{key}: score {score} is not the open time {k['t']}")
        if last is not None and k["t"] <= last:
            raise Drift(f"{key}: open times not increasing")
        last = k["t"]
        sym, iv = key.split(":")[-2:]
        if k["s"] != sym or k["i"] != iv:
            raise Drift(f"{key}: member of {k['s']} {k['i']}")


def kind_ticker_24h(r, key):
    check_fields(key, load(key, read_string(r, key)), TICKER_FIELDS)


def symbol_hash(fields):
    """A reader of a hash of symbol → JSON object whose "symbol" is the field."""
    def read(r, key):
        h = r.hgetall(key)
        if not h:
            raise Drift(f"{key}: empty hash")
        for sym, v in h.items():
            obj = load(key, v)
            check_fields(key, obj, fields)
            if obj["symbol"] != sym:
                raise Drift(f"{key}: field {sym} holds {obj['symbol']}")
    return read


kind_market_ticker_24h = symbol_hash(TICKER_FIELDS)
kind_book_ticker = symbol_hash(BOOK_FIELDS)


def kind_symbol_info(r, key):
    check_fields(key, load(key, read_string(r, key)), SYMBOL_FIELDS)


def kind_unknown_symbol(r, key):
    check_fields(key, load(key, read_string(r, key)), {"code": int, "msg": str})


def kind_account_assets(r, key):
    assets = load(key, read_string(r, key))
    if not isinstance(assets, list) or not all(isinstance(a, str) and a.isupper() for a in assets):
        raise Drift(f"{key}: want a JSON array of upper-case asset names")


def kind_listen_key(r, key):
    v = read_string(r, key)
    if not v or " " in v:
        raise Drift(f"{key}: want a listenKey string")


def kind_lease(r, key):
    check_fields(key, load(key, read_string(r, key)), LEASE_FIELDS)


def kind_market_nodes(r, key):
    for member, score in r.zrange(key, 0, -1, withscores=True):
        if not member or " " in member or score <= 0:
            raise Drift(f"{key}: member {member!r} at {score}: want a node id and its last heartbeat (ms)")


def kind_leader_epoch(r, key):
    v = read_string(r, key)
    if v is None or not v.isdigit():
        raise Drift(f"{key}: want an integer, got {v!r}")


# kind → (SCAN pattern without the prefix, Redis type, reader)
KINDS = {
    "positions": ("ats:positions:cache", "string", kind_positions),
    "balance": ("ats:balance:cache:*", "string", kind_balance),
    "kline": ("market:kline:*:*", "zset", kind_kline),
    "ticker_24h": ("ticker_24h:*", "string", kind_ticker_24h),
    "market_ticker_24h": ("market:ticker_24h", "hash", kind_market_ticker_24h),
    "book_ticker": ("market:book_ticker", "hash", kind_book_ticker),
    "symbol_info": ("symbol_info:*", "string", kind_symbol_info),
    "listen_key": ("listen_key:*", "string", kind_listen_key),
    "market_ws_leader": ("market_ws_leader", "string", kind_lease),
    "market_ws_group": ("market_ws_leader:*", "string", kind_lease),
    "market_nodes": ("market_nodes", "zset", kind_market_nodes),
    "account_leader": ("account_leader:*", "string", kind_lease),
    "leader_epoch": ("leader_epoch:*", "string", kind_leader_epoch),
    "exchange_info": ("exchange_info", "hash", symbol_hash(SYMBOL_FIELDS)),
    "unknown_symbol": ("unknown_symbol:*", "string", kind_unknown_symbol),
    "account_assets": ("account_assets:*", "string", kind_account_assets),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefix", default=os.environ.get("TRADECACHE_KEY_PREFIX", ""))
    ap.add_argument("--require", default="", help="kinds that must have at least one key, comma-separated")
    args = ap.parse_args()
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True)
    required = {k for k in args.require.split(",") if k}
    unknown = required - KINDS.keys()
    if unknown:
        print(f"unknown kinds: {sorted(unknown)}", file=sys.stderr)
        return 2
    try:
        for kind, (pattern, typ, reader) in KINDS.items():
            keys = sorted(r.scan_iter(match=args.prefix + pattern, count=1000))
            for key in keys:
                if r.type(key) != typ:
                    raise Drift(f"{key}: Redis type {r.type(key)}, want {typ}")
                ttl = r.pttl(key)
                if ttl < 0:
                    raise Drift(f"{key}: no TTL (PTTL {ttl})")
                reader(r, key)
            if kind in required and not keys:
                raise Drift(f"{kind}: no key matching {args.prefix + pattern}")
            print(f"ok {kind} {len(keys)}")
    except Drift as e:
        print(f"drift: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
