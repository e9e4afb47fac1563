package authn

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestRequireClaims(t *testing.T) {
	const claims = `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
	// The endpoint stands in for mcp-go answering a call: the call asks
	// for the claims (or not), and the answer is a JSON-RPC body, after
	// an event the stream already sent (or not).
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		streamed := r.URL.Query().Has("stream")
		if streamed {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("event: message\ndata: {}\n\n"))
		}
		asked := false
		if r.URL.Query().Has("claims") {
			asked = RequireClaims(r.Context(), claims, `the role needs "c1"`)
		}
		if asked == streamed && r.URL.Query().Has("claims") {
			t.Errorf("RequireClaims reported %v with the stream begun %v", asked, streamed)
		}
		if !streamed {
			w.Header().Set("Content-Type", "application/json")
		}
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"isError":true}}`))
	})
	iss, srv := guarding(t, next, "api://mcp-gate/mcp.call")
	good := "Bearer " + sign(t, iss.goodClaims(), "k1", testKey(t, 0))
	tests := []struct {
		name, query string
		status      int
		challenge   []string
	}{
		{"asked", "?claims", 401, []string{`error="insufficient_claims"`, `claims="` + base64.StdEncoding.EncodeToString([]byte(claims)) + `"`,
			`error_description="the role needs 'c1'"`, `resource_metadata="` + srv.URL + MetadataPath + `/mcp"`, `scope="api://mcp-gate/mcp.call"`}},
		{"not asked", "", 200, nil},
		{"asked after the stream began", "?claims&stream", 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, "POST", srv.URL+"/mcp"+tt.query, good, "")
			if a.status != tt.status || !strings.Contains(a.body, `"isError":true`) {
				t.Fatalf("%d %q, want %d with the call's answer", a.status, a.body, tt.status)
			}
			h := a.header.Get("WWW-Authenticate")
			if tt.challenge == nil && h != "" {
				t.Errorf("WWW-Authenticate %q, want none", h)
			}
			for _, c := range tt.challenge {
				if !strings.Contains(h, c) {
					t.Errorf("WWW-Authenticate %q lacks %q", h, c)
				}
			}
		})
	}
	if RequireClaims(t.Context(), claims, "outside the guard") {
		t.Error("RequireClaims reported true outside the guard")
	}
}
