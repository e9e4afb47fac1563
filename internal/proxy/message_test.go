package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/testupstream"
)

func TestParseMessage(t *testing.T) {
	for _, tt := range []struct {
		line   string
		kind   kind
		code   int    // 0: valid
		errID  string // the id the error answer carries; "" for null
		reason string // in the error message
	}{
		{line: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, kind: request},
		{line: `{"jsonrpc":"2.0","id":"a","method":"ping","params":{}}`, kind: request},
		{line: `{"jsonrpc":"2.0","id":-1.5e3,"method":"ping","params":null}`, kind: request},
		{line: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, kind: notification},
		{line: `{"jsonrpc":"2.0","id":1,"result":{}}`, kind: response},
		{line: `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}`, kind: response},
		{line: `{}`, code: mcp.INVALID_REQUEST, reason: `"jsonrpc" must be`},
		{line: `{"jsonrpc":"2.0"}`, code: mcp.INVALID_REQUEST, reason: "no method"},
		{line: `null`, code: mcp.INVALID_REQUEST, reason: "one JSON-RPC message object"},
		{line: `"ping"`, code: mcp.INVALID_REQUEST},
		{line: `42`, code: mcp.INVALID_REQUEST},
		{line: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, code: mcp.INVALID_REQUEST, reason: "batches"},
		{line: `[]`, code: mcp.INVALID_REQUEST, reason: "batches"},
		{line: `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, code: mcp.INVALID_REQUEST, reason: "id must be"},
		{line: `{"jsonrpc":"2.0","id":[1],"method":"ping"}`, code: mcp.INVALID_REQUEST, reason: "id must be"},
		{line: `{"jsonrpc":"2.0","id":true,"method":"ping"}`, code: mcp.INVALID_REQUEST, reason: "id must be"},
		{line: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, code: mcp.INVALID_REQUEST, reason: "id must be"},
		{line: `{"jsonrpc":"2.0","id":1e999,"method":"ping"}`, code: mcp.INVALID_REQUEST, reason: "id must be"},
		{line: `{"id":1,"method":"ping"}`, code: mcp.INVALID_REQUEST, errID: "1", reason: `"jsonrpc" must be "2.0"`},
		{line: `{"jsonrpc":"1.0","id":"x","method":"ping"}`, code: mcp.INVALID_REQUEST, errID: `"x"`, reason: `"jsonrpc"`},
		{line: `{"jsonrpc":2,"id":1,"method":"ping"}`, code: mcp.INVALID_REQUEST},
		{line: `{"jsonrpc":"2.0","method":"notifications/x","params":[1]}`, code: mcp.INVALID_REQUEST, reason: "params must be an object"},
		{line: `{"jsonrpc":"2.0","id":7,"method":"ping","params":"x"}`, code: mcp.INVALID_REQUEST, errID: "7", reason: "params"},
		{line: `{"jsonrpc":"2.0","id":7}`, code: mcp.INVALID_REQUEST, errID: "7", reason: "no method"},
		{line: `{"jsonrpc":"2.0","id":1,"method":1}`, code: mcp.INVALID_REQUEST},
		{line: `{"jsonrpc":"2.0","id":1,"method":`, code: mcp.PARSE_ERROR},
		{line: `this is not json`, code: mcp.PARSE_ERROR},
	} {
		t.Run(tt.line, func(t *testing.T) {
			_, k, bad := parseMessage([]byte(tt.line))
			if tt.code == 0 {
				if bad != nil || k != tt.kind {
					t.Fatalf("got kind %d, %+v; want kind %d", k, bad, tt.kind)
				}
				return
			}
			if bad == nil {
				t.Fatalf("accepted as kind %d", k)
			}
			if bad.code != tt.code || string(bad.id) != tt.errID || !strings.Contains(bad.message, tt.reason) {
				t.Errorf("got %d id %q %q, want %d id %q mentioning %q", bad.code, bad.id, bad.message, tt.code, tt.errID, tt.reason)
			}
		})
	}
}

func TestIDKey(t *testing.T) {
	same := [][]string{
		{`1`, `1.0`, `1e0`, ` 1`},
		{`"1"`, `"\u0031"`},
		{`-20`, `-2e1`},
	}
	for _, group := range same {
		want, ok := idKey(json.RawMessage(group[0]))
		if !ok {
			t.Fatalf("%s: not an id", group[0])
		}
		for _, id := range group[1:] {
			if got, ok := idKey(json.RawMessage(id)); !ok || got != want {
				t.Errorf("%s: key %q, want %q as for %s", id, got, want, group[0])
			}
		}
	}
	if a, _ := idKey(json.RawMessage(`1`)); a == func() string { k, _ := idKey(json.RawMessage(`"1"`)); return k }() {
		t.Error("the number 1 and the string \"1\" are one id")
	}
}

func TestReadLine(t *testing.T) {
	const limit = 100
	long := strings.Repeat("x", 10*limit)
	in := "short\n" + strings.Repeat("y", limit) + "\n" + long + "\n" + strings.Repeat("z", limit+1) + "\nlast"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	type line struct {
		text    string
		tooLong bool
	}
	var got []line
	for {
		l, tooLong, err := readLine(r, limit)
		got = append(got, line{strings.TrimSuffix(string(l), "\n"), tooLong})
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	want := []line{{"short", false}, {strings.Repeat("y", limit), false}, {"", true}, {"", true}, {"last", false}}
	if len(got) != len(want) {
		t.Fatalf("got %d lines %v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %.20q (too long %v), want %.20q (too long %v)", i, got[i].text, got[i].tooLong, want[i].text, want[i].tooLong)
		}
	}
}

// rawStdio serves p's stdio front on pipes and returns a writer of lines
// and a reader of answers.
func rawStdio(t *testing.T, p *Proxy) (send func(string), next func() map[string]any) {
	t.Helper()
	toProxy, fromClient := io.Pipe()
	toClient, fromProxy := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.ServeStdio(ctx, toProxy, fromProxy) }()
	t.Cleanup(func() {
		cancel()
		_ = fromClient.Close()
		_ = toClient.Close()
		<-served
	})
	lines := make(chan []byte, 16)
	go func() {
		sc := bufio.NewScanner(toClient)
		for sc.Scan() {
			lines <- bytes.Clone(sc.Bytes())
		}
		close(lines)
	}()
	send = func(s string) {
		t.Helper()
		if _, err := io.WriteString(fromClient, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	next = func() map[string]any {
		t.Helper()
		b, ok := <-lines
		if !ok {
			t.Fatal("stdout closed")
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %q", b)
		}
		return m
	}
	return send, next
}

func TestStdioRefusesInvalidMessagesAndGoesOn(t *testing.T) {
	url, _ := startUpstream(t, "up")
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, MaxMessageBytes: 1024})
	send, next := rawStdio(t, p)
	for _, tt := range []struct {
		line string
		id   any // the id answered
		code float64
		text string
	}{
		{`{}`, nil, mcp.INVALID_REQUEST, "jsonrpc"},
		{`null`, nil, mcp.INVALID_REQUEST, "object"},
		{`{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}`, nil, mcp.INVALID_REQUEST, "id must be"},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, nil, mcp.INVALID_REQUEST, "batches"},
		{`{"id":3,"method":"ping"}`, 3.0, mcp.INVALID_REQUEST, "jsonrpc"},
		{`{"jsonrpc":"2.0","id":4,"method":"ping","x":"` + strings.Repeat("a", 4096) + `"}`, nil, mcp.INVALID_REQUEST, "longer than 1024 bytes"},
		// A 2026-07-28 request must declare the client's capabilities.
		{`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, 6.0, mcp.INVALID_PARAMS, "clientCapabilities"},
	} {
		send(tt.line)
		m := next()
		e, _ := m["error"].(map[string]any)
		if m["id"] != tt.id || e == nil || e["code"] != tt.code || !strings.Contains(e["message"].(string), tt.text) {
			t.Errorf("%.60s: got %v, want error %v with id %v mentioning %q", tt.line, m, tt.code, tt.id, tt.text)
		}
	}
	send(`{"jsonrpc":"2.0","id":5,"method":"ping"}`)
	if m := next(); m["id"] != 5.0 || m["result"] == nil {
		t.Errorf("ping after invalid messages: %v", m)
	}
}

// The reason a client gives when it cancels reaches the middleware as the
// call's context cause, so the gate can tell the client's clock from its
// user's choice.
func TestStdioCancelCarriesTheClientsReason(t *testing.T) {
	for _, reason := range []string{"McpError: MCP error -32001: Request timed out", "the user pressed stop", ""} {
		t.Run(reason, func(t *testing.T) {
			url, _ := startUpstream(t, "up")
			entered := make(chan struct{})
			causes := make(chan error, 1)
			hold := func(next CallFunc) CallFunc {
				return func(ctx context.Context, c *Call) (Result, error) {
					close(entered)
					<-ctx.Done()
					causes <- context.Cause(ctx)
					return nil, ctx.Err()
				}
			}
			p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: hold})
			send, next := rawStdio(t, p)
			send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
			next()
			send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":60000}}}`)
			<-entered
			q, _ := json.Marshal(reason)
			send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":` + string(q) + `}}`)
			var ce *CancelledError
			if cause := <-causes; !errors.As(cause, &ce) || ce.Reason != reason {
				t.Fatalf("cause = %v, want the client's reason %q", cause, reason)
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(ce)
			if got, want := ClientTimedOut(ctx), strings.Contains(reason, "timed out"); got != want {
				t.Errorf("ClientTimedOut = %v, want %v", got, want)
			}
		})
	}
}

// TestStdioCancelWhileUpstreamStarts: a cancellation sent while the call
// still waits for its upstream to start is not lost: the call is never
// forwarded and gets no answer.
func TestStdioCancelWhileUpstreamStarts(t *testing.T) {
	up := testupstream.New(testupstream.Options{Name: "up", Clock: clock.Real{}, Exit: func(int) {}})
	rec := &recorder{}
	release := make(chan struct{})
	held := rec.wrap(server.NewStreamableHTTPServer(up.MCP()))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // the upstream is still starting
		held.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: ts.URL + "/mcp"}}})
	send, next := rawStdio(t, p)
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if m := next(); m["id"] != 1.0 {
		t.Fatalf("initialize: %v", m)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"cancelled"}}}`)
	send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}`)
	// Lines are handled in order: once the ping is answered, the
	// cancellation has been.
	send(`{"jsonrpc":"2.0","id":9,"method":"ping"}`)
	if m := next(); m["id"] != 9.0 {
		t.Fatalf("ping: %v", m)
	}
	close(release)
	send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami"}}`)
	for {
		m := next()
		if _, note := m["method"]; note {
			continue
		}
		if m["id"] != 3.0 || m["result"] == nil {
			t.Fatalf("got %v, want the answer to request 3 and none to the cancelled request 2", m)
		}
		break
	}
	if rec.seen("echo") {
		t.Error("a call cancelled while its upstream started was forwarded")
	}
}

// TestHTTPRefusesOversizeAndInvalidMessages: the HTTP front applies the same
// message limit and rules as stdio, before anything else reads the body.
func TestHTTPRefusesOversizeAndInvalidMessages(t *testing.T) {
	url, _ := startUpstream(t, "up")
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, MaxMessageBytes: 1024})
	ts := httptest.NewServer(p.HTTPHandler())
	t.Cleanup(ts.Close)
	for _, tt := range []struct {
		path, body string
		status     int
		text       string
	}{
		{StreamablePath, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 2048) + `"}}`, http.StatusRequestEntityTooLarge, "longer than 1024 bytes"},
		{MessagePath + "?sessionId=x", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 2048) + `"}}`, http.StatusRequestEntityTooLarge, "longer than 1024 bytes"},
		{StreamablePath, `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, http.StatusBadRequest, "id must be"},
		{StreamablePath, `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, http.StatusBadRequest, "batches"},
		{StreamablePath, `null`, http.StatusBadRequest, "object"},
	} {
		resp, err := http.Post(ts.URL+tt.path, "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m struct {
			ID    json.RawMessage `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if resp.StatusCode != tt.status || json.Unmarshal(b, &m) != nil || string(m.ID) != "null" ||
			m.Error.Code != mcp.INVALID_REQUEST || !strings.Contains(m.Error.Message, tt.text) {
			t.Errorf("%s %.50s: %d %s, want %d and error -32600 with id null mentioning %q", tt.path, tt.body, resp.StatusCode, b, tt.status, tt.text)
		}
	}
}

// TestHTTPModernCancelCannotReachOtherClients: protocol version 2026-07-28
// has no sessions over HTTP, so a notifications/cancelled there cannot say
// whose request it names; one client must not cancel another's call by
// naming the same id. (Closing the request's stream cancels it.)
func TestHTTPModernCancelCannotReachOtherClients(t *testing.T) {
	url, _ := startUpstream(t, "up")
	held := make(chan context.Context, 1)
	release := make(chan struct{})
	var once sync.Once
	hold := func(next CallFunc) CallFunc {
		return func(ctx context.Context, c *Call) (Result, error) {
			held <- ctx
			<-release
			return next(ctx, c)
		}
	}
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: hold})
	ts := httptest.NewServer(p.HTTPHandler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the server closes
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
	post := func(method, name, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+StreamablePath, strings.NewReader(body))
		req.Header.Set(mcp.HeaderMethod, method)
		if name != "" {
			req.Header.Set(mcp.HeaderName, name)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	answered := make(chan string, 1)
	go func() {
		_, body := post("tools/call", "whoami", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami",`+meta+`}}`)
		answered <- body
	}()
	var ctx context.Context
	select {
	case ctx = <-held:
	case body := <-answered:
		t.Fatalf("the call was answered before the middleware: %s", body)
	}
	if status, body := post("notifications/cancelled", "", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,`+meta+`}}`); status != http.StatusAccepted {
		t.Fatalf("notifications/cancelled: %d %s", status, body)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("another client's notifications/cancelled cancelled the call: %v", err)
	}
	once.Do(func() { close(release) })
	if body := <-answered; !strings.Contains(body, `"result"`) {
		t.Fatalf("the call answered %s", body)
	}
}
