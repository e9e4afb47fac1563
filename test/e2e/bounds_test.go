package e2e

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowBodyIsCutOff: a client that sends its headers and then trickles
// (or withholds) its body is answered 408 once --body-timeout is over; the
// connection is not held.
func TestSlowBodyIsCutOff(t *testing.T) {
	g := ServeGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--body-timeout", "1s", "--"}, Upstream("test-upstream")...)...)
	host := strings.TrimPrefix(strings.TrimSuffix(g.URL, "/mcp"), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte("POST /mcp HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: status %d, want 408", resp.StatusCode)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("answered after %s, before the body timeout", waited)
	}
}

// TestExpiredSessionAnswers404: a session unused for longer than
// --session-idle is gone: its next request is answered 404 (the MCP
// spec's signal to initialize anew), and a new session works. The idle
// time counts from the end of a request, so the initialize (which waits
// for the upstream) and the client's next requests keep the session even
// on a loaded machine; 3s leaves room for the gaps between them.
func TestExpiredSessionAnswers404(t *testing.T) {
	const idle = 3 * time.Second
	g := ServeGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--session-idle", idle.String(), "--"}, Upstream("test-upstream")...)...)
	c := g.Client(t, Protocols[0].Opts...)
	sid := c.GetSessionId()
	if got := Text(t, Call(t, c, "echo", map[string]any{"text": "a"})); got != "a" {
		t.Fatalf("echo: %q", got)
	}
	// Any request would keep the session alive, so the test waits out the
	// idle time itself before the one request that must find it expired.
	<-time.After(idle + 500*time.Millisecond)
	status, body, err := Post(t.Context(), g.URL, sid, `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
	if err != nil || status != http.StatusNotFound {
		t.Fatalf("expired session: %d %s %v, want 404", status, body, err)
	}
	if !strings.Contains(body, "initialize a new session") {
		t.Errorf("404 without a sentence: %q", body)
	}
	c2 := g.Client(t, Protocols[0].Opts...)
	if got := Text(t, Call(t, c2, "echo", map[string]any{"text": "b"})); got != "b" {
		t.Fatalf("echo in a new session: %q", got)
	}
}

// TestCallsInFlightCappedPerPrincipal: with --max-calls-in-flight 1, alice's
// call waiting for approval is her one call in flight: her next is refused
// (429, with a sentence), bob's is served, and once hers is answered she
// may call again.
func TestCallsInFlightCappedPerPrincipal(t *testing.T) {
	e := startPIM(t)
	g, _ := authGate(t, e, "  wait: 30s\n", false, "--max-calls-in-flight", "1")
	aliceTok := e.userToken(alice)
	ac := g.userClient(t, aliceTok)
	done := make(chan error, 1)
	go func() {
		_, err := TryCall(t.Context(), ac, "delete_database", map[string]any{"name": "x"})
		done <- err
	}()
	req := e.pendingRequest(t, alice) // her call is in flight, waiting

	opened := request(t, http.MethodPost, g.URL, aliceTok, "", initializeBody) // a 2025-11-25 session
	sid := opened.header.Get("Mcp-Session-Id")
	a := request(t, http.MethodPost, g.URL, aliceTok, sid, `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"read_table","arguments":{"table":"t"}}}`)
	if a.status != http.StatusTooManyRequests || !strings.Contains(a.body, "Too many calls in flight") {
		t.Fatalf("alice's second call: %d %s, want 429 with a sentence", a.status, a.body)
	}
	if _, err := TryCall(t.Context(), ac, "read_table", map[string]any{"table": "t"}); err == nil || !strings.Contains(err.Error(), "Too many calls in flight") {
		t.Fatalf("alice's second call through a client: %v, want refused", err)
	}

	bc := g.userClient(t, e.userToken(bob))
	if res := Call(t, bc, "read_table", map[string]any{"table": "t"}); res.IsError {
		t.Fatalf("bob's call refused while alice's is in flight: %s", Text(t, res))
	}

	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	if err := Receive(t, "alice's approved call", done); err != nil {
		t.Fatalf("alice's call: %v", err)
	}
	if res := Call(t, ac, "read_table", map[string]any{"table": "t"}); res.IsError {
		t.Fatalf("alice's call after hers was answered: %s", Text(t, res))
	}
}
