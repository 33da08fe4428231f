package filecache

import (
	"encoding/json"
	"fmt"
	"time"
)

// GetJSON reads key and decodes its JSON value into a T. A miss is
// (zero, false, nil); a cached false, 0, "" or empty slice is a hit. A
// value that is not a T's JSON is an error.
func GetJSON[T any](c *Cache, key string) (T, bool, error) {
	var v T
	b, ok, err := c.Get(key)
	if err != nil || !ok {
		return v, false, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("filecache: decode %.64q: %w", key, err)
	}
	return v, true, nil
}

// SetJSON stores v as JSON under key; expire is as for Set.
func SetJSON[T any](c *Cache, key string, v T, expire time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("filecache: encode %.64q: %w", key, err)
	}
	return c.Set(key, b, expire)
}
