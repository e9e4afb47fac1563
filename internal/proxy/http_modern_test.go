package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// regionServer is an mcp-go server whose one tool binds its region argument
// to the Mcp-Param-Region header.
func regionServer(t *testing.T) string {
	t.Helper()
	s := server.NewMCPServer("direct", "1")
	s.AddTool(mcp.NewToolWithRawSchema("echo", "says text back",
		json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"},"region":{"type":"string","x-mcp-header":"Region"}}}`)),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("text", "") + "@" + req.GetString("region", "")), nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// A sessionless 2026-07-28 tools/call is answered through the gate as the
// upstream answers it directly, whether the gate serves it itself (a valid
// call that needs no stream) or hands it to mcp-go's server (every request
// mcp-go would refuse, and calls with a progress token): the same status,
// the same error or the same content.
func TestModernHTTPCallsAnsweredAsDirect(t *testing.T) {
	direct := regionServer(t)
	var mu sync.Mutex
	viaMCPGo := map[string]bool{}
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: direct}}, Middleware: func(next CallFunc) CallFunc {
		return func(ctx context.Context, c *Call) (Result, error) {
			mu.Lock()
			viaMCPGo[string(c.Arguments)] = server.ClientSessionFromContext(ctx) != nil
			mu.Unlock()
			return next(ctx, c)
		}
	}})
	gate := httptest.NewServer(p.HTTPHandler())
	t.Cleanup(gate.Close)

	const (
		version = `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`
		info    = `"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}`
		caps    = `"io.modelcontextprotocol/clientCapabilities":{}`
	)
	body := func(tool, args, meta string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `,"_meta":{` + meta + `}}}`
	}
	valid := body("echo", `{"text":"hi","region":"eu"}`, version+","+info+","+caps)
	header := func(set ...string) func(http.Header) {
		return func(h http.Header) {
			for i := 0; i < len(set); i += 2 {
				if set[i+1] == "" {
					h.Del(set[i])
				} else {
					h.Set(set[i], set[i+1])
				}
			}
		}
	}
	for _, tc := range []struct {
		name   string
		body   string
		header func(http.Header)
		direct bool // served by the gate itself
	}{
		{"valid", valid, header(), true},
		{"unknown tool", body("nosuch", `{}`, version+","+info+","+caps), header(mcp.HeaderName, "nosuch", "Mcp-Param-Region", ""), true},
		{"no client capabilities", body("echo", `{"text":"a","region":"eu"}`, version+","+info), header(), false},
		{"capabilities null", body("echo", `{"text":"b","region":"eu"}`, version+","+info+`,"io.modelcontextprotocol/clientCapabilities":null`), header(), false},
		{"capabilities not an object", body("echo", `{"text":"c","region":"eu"}`, version+","+info+`,"io.modelcontextprotocol/clientCapabilities":"all"`), header(), false},
		{"Mcp-Name differs", body("echo", `{"text":"d","region":"eu"}`, version+","+info+","+caps), header(mcp.HeaderName, "other"), false},
		{"no Mcp-Method", body("echo", `{"text":"e","region":"eu"}`, version+","+info+","+caps), header(mcp.HeaderMethod, ""), false},
		{"no version header", body("echo", `{"text":"f","region":"eu"}`, version+","+info+","+caps), header(mcp.HeaderProtocolVersion, ""), false},
		{"versions differ", body("echo", `{"text":"g","region":"eu"}`, version+","+info+","+caps), header(mcp.HeaderProtocolVersion, "2025-11-25"), false},
		{"unsupported version", body("echo", `{"text":"h","region":"eu"}`, `"io.modelcontextprotocol/protocolVersion":"2099-01-01",`+info+","+caps), header(mcp.HeaderProtocolVersion, "2099-01-01"), false},
		{"Last-Event-ID", body("echo", `{"text":"i","region":"eu"}`, version+","+info+","+caps), header(mcp.HeaderLastEventID, "1"), false},
		{"not JSON", body("echo", `{"text":"j","region":"eu"}`, version+","+info+","+caps), header("Content-Type", "text/plain"), false},
		{"param header differs", body("echo", `{"text":"k","region":"eu"}`, version+","+info+","+caps), header("Mcp-Param-Region", "us"), false},
		{"param header missing", body("echo", `{"text":"l","region":"eu"}`, version+","+info+","+caps), header("Mcp-Param-Region", ""), false},
		{"progress token", body("echo", `{"text":"m","region":"eu"}`, version+","+info+","+caps+`,"progressToken":"p"`), header(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			post := func(url string) (int, map[string]json.RawMessage) {
				req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set(mcp.HeaderProtocolVersion, "2026-07-28")
				req.Header.Set(mcp.HeaderMethod, "tools/call")
				req.Header.Set(mcp.HeaderName, "echo")
				req.Header.Set("Mcp-Param-Region", "eu")
				tc.header(req.Header)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				var answer map[string]json.RawMessage
				if json.Unmarshal(b, &answer) != nil {
					answer = map[string]json.RawMessage{"text": json.RawMessage(b)}
				}
				return resp.StatusCode, answer
			}
			wantStatus, want := post(direct)
			gotStatus, got := post(gate.URL + StreamablePath)
			if gotStatus != wantStatus {
				t.Errorf("status %d through the gate, %d directly", gotStatus, wantStatus)
			}
			if w, g := sameAnswer(want), sameAnswer(got); g != w {
				t.Errorf("through the gate:\n%s\ndirectly:\n%s", g, w)
			}
			var args struct {
				Params struct{ Arguments json.RawMessage }
			}
			_ = json.Unmarshal([]byte(tc.body), &args)
			mu.Lock()
			defer mu.Unlock()
			if mcpgo, called := viaMCPGo[string(args.Params.Arguments)]; called && mcpgo == tc.direct {
				t.Errorf("served by mcp-go's server: %v, want %v", mcpgo, !tc.direct)
			}
		})
	}
}

// sameAnswer is what of an answer must not differ between the gate and the
// server behind it: the error, or the result without the identity of the
// server that sent it.
func sameAnswer(answer map[string]json.RawMessage) string {
	if e, ok := answer["error"]; ok {
		return "error " + string(e)
	}
	if t, ok := answer["text"]; ok {
		return "text " + string(t)
	}
	var res map[string]json.RawMessage
	_ = json.Unmarshal(answer["result"], &res)
	delete(res, "_meta")
	b, _ := json.Marshal(res)
	return "result " + string(b)
}
