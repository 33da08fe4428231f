package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/keyaudit"
	"github.com/tradecache/tradecache/keyspace"
)

// newAuditor runs the keys audit for /api/v1/keys/audit: at most one at a
// time, and a result younger than 30 s is served again, so a dashboard
// polling it cannot make the node SCAN Redis continuously.
func newAuditor(tc *cache.Cache, reg *keyspace.Registry) httpapi.Auditor {
	var mu sync.Mutex // guards last and at; held during an audit (one at a time)
	var last keyaudit.Report
	var at time.Time
	return func(ctx context.Context) (keyaudit.Report, error) {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < 30*time.Second {
			return last, nil
		}
		cl := tc.Redis()
		if cl == nil {
			return keyaudit.Report{}, errors.New("redis unreachable: the node runs on its memory tier")
		}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		rep, err := keyaudit.Audit(actx, cl, keyaudit.Options{Memory: true, Group: keyaudit.FamilyOf(reg), Pause: time.Millisecond})
		if err != nil {
			return keyaudit.Report{}, err
		}
		last, at = rep, time.Now()
		return rep, nil
	}
}
