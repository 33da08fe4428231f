package httpapi_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/httpapi"
)

// /healthz carries the stream groups section as Groups reports it; a node
// holding none says so with an empty list, not null; without Groups there
// is no section.
func TestHealthStreamGroups(t *testing.T) {
	c, err := cache.New(cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		groups func() *httpapi.GroupsHealth
		want   string // the section's JSON; "" for none
	}{
		{"several groups", func() *httpapi.GroupsHealth {
			return &httpapi.GroupsHealth{Total: 3, Held: []string{"g1"}, Holders: map[string]string{"g0": "n2", "g1": "n1", "g2": "n2"}, Live: []string{"n1", "n2"}}
		}, `{"total":3,"held":["g1"],"holders":{"g0":"n2","g1":"n1","g2":"n2"},"live_nodes":["n1","n2"]}`},
		{"holding none", func() *httpapi.GroupsHealth { return &httpapi.GroupsHealth{Total: 1} }, `{"total":1,"held":[]}`},
		{"no groups", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &httpapi.Server{NodeID: "n1", Cache: c, Started: time.Now(), Groups: tt.groups}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			res, err := srv.Client().Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body map[string]json.RawMessage
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSpace(string(body["stream_groups"]))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stream_groups (-want +got):\n%s", diff)
			}
		})
	}
}
