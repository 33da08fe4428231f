package store_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/store"
)

func order(id, exID string, status store.OrderStatus) store.Order {
	return store.Order{ID: id, ExchangeID: exID, Exchange: ex, Symbol: sym, Side: "buy", Type: "limit", Qty: 1, Price: 100, Status: status}
}

func TestOrders(t *testing.T) {
	type op struct {
		do      func(s *store.Store) error
		wantErr error
	}
	add := func(o store.Order) func(*store.Store) error {
		return func(s *store.Store) error { return s.AddOrder(o) }
	}
	update := func(o store.Order) func(*store.Store) error {
		return func(s *store.Store) error { return s.UpdateOrder(o) }
	}
	remove := func(id string) func(*store.Store) error {
		return func(s *store.Store) error { return s.RemoveOrder(ex, sym, id) }
	}
	tests := []struct {
		name       string
		ops        []op
		wantAll    []string // ids, oldest first
		wantActive []string
	}{
		{
			name:       "add and list",
			ops:        []op{{do: add(order("1", "", store.OrderActive))}, {do: add(order("2", "x2", store.OrderExecuted))}},
			wantAll:    []string{"1", "2"},
			wantActive: []string{"1"},
		},
		{
			name: "duplicate id refused",
			ops: []op{
				{do: add(order("1", "x1", store.OrderActive))},
				{do: add(order("1", "x9", store.OrderActive)), wantErr: store.ErrDuplicateOrder},
			},
			wantAll: []string{"1"}, wantActive: []string{"1"},
		},
		{
			name: "duplicate exchange id refused",
			ops: []op{
				{do: add(order("1", "x1", store.OrderActive))},
				{do: add(order("2", "x1", store.OrderActive)), wantErr: store.ErrDuplicateOrder},
			},
			wantAll: []string{"1"}, wantActive: []string{"1"},
		},
		{
			name: "exact match: ids that are substrings of each other are distinct (Jesse's bug)",
			ops: []op{
				{do: add(order("11", "x11", store.OrderActive))},
				{do: add(order("1", "x1", store.OrderActive))},
				{do: add(order("111", "x111", store.OrderActive))},
			},
			wantAll: []string{"11", "1", "111"}, wantActive: []string{"11", "1", "111"},
		},
		{
			name: "empty exchange ids are not duplicates",
			ops: []op{
				{do: add(order("1", "", store.OrderActive))},
				{do: add(order("2", "", store.OrderActive))},
			},
			wantAll: []string{"1", "2"}, wantActive: []string{"1", "2"},
		},
		{
			name: "update status and exchange id",
			ops: []op{
				{do: add(order("1", "", store.OrderQueued))},
				{do: add(order("2", "x2", store.OrderActive))},
				{do: update(order("1", "x1", store.OrderExecuted))},
				{do: update(order("2", "x1", store.OrderActive)), wantErr: store.ErrDuplicateOrder},
				{do: update(order("3", "", store.OrderActive)), wantErr: store.ErrNotFound},
			},
			wantAll: []string{"1", "2"}, wantActive: []string{"2"},
		},
		{
			name: "remove",
			ops: []op{
				{do: add(order("1", "x1", store.OrderActive))},
				{do: add(order("2", "x2", store.OrderActive))},
				{do: remove("1")},
				{do: remove("1"), wantErr: store.ErrNotFound},
				{do: add(order("3", "x1", store.OrderActive))}, // x1 is free again
			},
			wantAll: []string{"2", "3"}, wantActive: []string{"2", "3"},
		},
		{
			name: "invalid orders",
			ops: []op{
				{do: add(order("", "", store.OrderActive)), wantErr: store.ErrInvalid},
				{do: add(order("1", "", "OPEN")), wantErr: store.ErrInvalid},
				{do: add(store.Order{ID: "1", Symbol: sym, Status: store.OrderActive}), wantErr: store.ErrInvalid},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(store.Config{})
			for i, op := range tt.ops {
				err := op.do(s)
				if !errors.Is(err, op.wantErr) || (op.wantErr == nil && err != nil) {
					t.Fatalf("op %d: %v, want %v", i, err, op.wantErr)
				}
			}
			if diff := cmp.Diff(tt.wantAll, orderIDs(s.Orders(ex, sym))); diff != "" {
				t.Errorf("Orders (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantActive, orderIDs(s.ActiveOrders(ex, sym))); diff != "" {
				t.Errorf("ActiveOrders (-want +got):\n%s", diff)
			}
		})
	}
}

func orderIDs(os []store.Order) []string {
	var out []string
	for _, o := range os {
		out = append(out, o.ID)
	}
	return out
}

func TestOrderLookup(t *testing.T) {
	s := store.New(store.Config{})
	for _, o := range []store.Order{order("11", "x11", store.OrderActive), order("1", "x1", store.OrderExecuted)} {
		if err := s.AddOrder(o); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		get    func() (store.Order, bool)
		wantID string
	}{
		{"by id", func() (store.Order, bool) { return s.Order(ex, sym, "1") }, "1"},
		{"by id, no substring match", func() (store.Order, bool) { return s.Order(ex, sym, "111") }, ""},
		{"by exchange id", func() (store.Order, bool) { return s.OrderByExchangeID(ex, sym, "x11") }, "11"},
		{"by exchange id, no substring match", func() (store.Order, bool) { return s.OrderByExchangeID(ex, sym, "x") }, ""},
		{"empty exchange id", func() (store.Order, bool) { return s.OrderByExchangeID(ex, sym, "") }, ""},
		{"other route", func() (store.Order, bool) { return s.Order(ex, "ETH-USDT", "1") }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, ok := tt.get()
			if ok != (tt.wantID != "") || o.ID != tt.wantID {
				t.Errorf("got %q, %v; want %q", o.ID, ok, tt.wantID)
			}
		})
	}
	s.ClearOrders(ex, sym)
	if len(s.Orders(ex, sym)) != 0 || s.ActiveOrderCount() != 0 {
		t.Error("ClearOrders left orders")
	}
}

// Beyond OrderHistoryCapacity the oldest non-active order is dropped;
// active orders never are.
func TestOrderHistoryBound(t *testing.T) {
	s := store.New(store.Config{OrderHistoryCapacity: 3})
	steps := []struct {
		o    store.Order
		want []string
	}{
		{order("a1", "", store.OrderActive), []string{"a1"}},
		{order("e1", "", store.OrderExecuted), []string{"a1", "e1"}},
		{order("e2", "", store.OrderCanceled), []string{"a1", "e1", "e2"}},
		{order("e3", "", store.OrderExecuted), []string{"a1", "e2", "e3"}}, // e1 dropped, a1 kept
		{order("a2", "", store.OrderQueued), []string{"a1", "e3", "a2"}},
		{order("a3", "", store.OrderPartiallyFilled), []string{"a1", "a2", "a3"}},
		{order("a4", "", store.OrderActive), []string{"a1", "a2", "a3", "a4"}}, // all active: over the bound
		{order("e4", "", store.OrderRejected), []string{"a1", "a2", "a3", "a4"}},
	}
	for i, st := range steps {
		if err := s.AddOrder(st.o); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.want, orderIDs(s.Orders(ex, sym))); diff != "" {
			t.Fatalf("after step %d (%s) (-want +got):\n%s", i, st.o.ID, diff)
		}
	}
	// An order that stops being active becomes droppable.
	o := order("a1", "", store.OrderExecuted)
	if err := s.UpdateOrder(o); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a2", "a3", "a4"}, orderIDs(s.Orders(ex, sym))); diff != "" {
		t.Errorf("after a1 executed (-want +got):\n%s", diff)
	}
}
