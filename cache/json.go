package cache

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tradecache/tradecache/keyspace"
)

// GetJSON reads key and decodes its JSON value into a T. A miss is
// (zero, false, nil); a value that is not a T's JSON is an error.
func GetJSON[T any](ctx context.Context, c *Cache, key keyspace.Key) (T, bool, error) {
	var v T
	b, ok, err := c.Get(ctx, key)
	if err != nil || !ok {
		return v, false, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("cache: decode %s: %w", key, err)
	}
	return v, true, nil
}

// SetJSON writes v as JSON under key, with the key's TTL.
func SetJSON[T any](ctx context.Context, c *Cache, key keyspace.Key, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache: encode %s: %w", key, err)
	}
	return c.Set(ctx, key, b)
}

// GetOrLoadJSON is GetOrLoad for JSON values: load runs once per key however
// many callers miss at once, and its result is stored as JSON. A value held
// that is not a T's JSON is a miss (GetOrLoadValid): reported, loaded again
// and overwritten.
func GetOrLoadJSON[T any](ctx context.Context, c *Cache, key keyspace.Key, load func(ctx context.Context) (T, error)) (T, error) {
	var v T
	b, err := c.GetOrLoadValid(ctx, key, func(ctx context.Context) ([]byte, error) {
		v, err := load(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}, DecodesAs[T])
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("cache: decode %s: %w", key, err)
	}
	return v, nil
}

// GetValidJSON is GetValid for JSON values: a value held that is not a
// T's JSON is a miss like an unusable one, reported and left as it is.
func GetValidJSON[T any](ctx context.Context, c *Cache, key keyspace.Key) (T, bool, error) {
	var v T
	b, ok, err := c.GetValid(ctx, key, DecodesAs[T])
	if err != nil || !ok {
		return v, false, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("cache: decode %s: %w", key, err)
	}
	return v, true, nil
}

// DecodesAs is a GetOrLoadValid check: b is the JSON of a T.
func DecodesAs[T any](b []byte) error {
	var v T
	return json.Unmarshal(b, &v)
}
