package keyaudit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/internal/keyaudit"
	"github.com/tradecache/tradecache/internal/testenv"
)

// A key whose slot is on another master answers MOVED to a node asked
// directly, as one that lost the slot in a failover does mid-audit: Audit
// takes that for a moved slot (and starts again), not for a failure.
func TestMovedIsRecognised(t *testing.T) {
	r := testenv.StartCluster(t)
	node, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{r.Node(0).Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	ctx := context.Background()
	var movedErr error
	for i := 0; i < 100 && movedErr == nil; i++ {
		movedErr = node.Do(ctx, node.B().Pttl().Key(fmt.Sprint("k", i)).Build()).Error()
	}
	if movedErr == nil {
		t.Fatal("no key of 100 on another master")
	}
	if !keyaudit.Moved(fmt.Errorf("keyaudit: %s: %w", r.Node(0).Addr(), fmt.Errorf("pttl %q: %w", "k", movedErr))) {
		t.Errorf("%v not taken for a moved slot", movedErr)
	}
	if keyaudit.Moved(errors.New("MOVED 1 127.0.0.1:1")) || keyaudit.Moved(context.DeadlineExceeded) {
		t.Error("an error that is not a Redis reply taken for MOVED")
	}
}
