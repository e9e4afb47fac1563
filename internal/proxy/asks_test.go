package proxy

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func TestWithAsks(t *testing.T) {
	asks := []AskArg{{Name: "justification", Description: "why"}, {Name: "ticket", Description: "t"}}
	tests := []struct {
		name, in, want string
		declared       []string
	}{
		{"bare", `{"type":"object"}`, `{"properties":{"justification":{"description":"why","type":"string"},"ticket":{"description":"t","type":"string"}},"type":"object"}`, nil},
		{"empty", ` {} `, ` {"properties":{"justification":{"description":"why","type":"string"},"ticket":{"description":"t","type":"string"}}} `, nil},
		{"with properties", `{"type":"object", "properties": {"b": {"type":"integer"}} ,"$comment":"x"}`,
			`{"type":"object", "properties": {"b": {"type":"integer"},"justification":{"description":"why","type":"string"},"ticket":{"description":"t","type":"string"}} ,"$comment":"x"}`, []string{"b"}},
		{"empty properties", `{"properties":{}}`, `{"properties":{"justification":{"description":"why","type":"string"},"ticket":{"description":"t","type":"string"}}}`, nil},
		{"declares one", `{"properties":{"ticket":{"type":"number"}}}`, `{"properties":{"ticket":{"type":"number"},"justification":{"description":"why","type":"string"}}}`, []string{"ticket"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, declared, err := withAsks(json.RawMessage(tc.in), asks)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || !slices.Equal(declared, tc.declared) {
				t.Fatalf("withAsks = %s, %q\n want %s, %q", got, declared, tc.want, tc.declared)
			}
			if !json.Valid(got) {
				t.Fatal("not JSON")
			}
		})
	}
	for _, bad := range []string{`[]`, `{"properties":[]}`, `{"properties":1}`} {
		if _, _, err := withAsks(json.RawMessage(bad), asks); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

type elicitor struct{}

func (elicitor) Elicit(context.Context, mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionDecline}}, nil
}

// A client that cannot ask its user sees the Asks arguments in the tool's
// schema; one that can sees the upstream's schema; the call carries the
// tool's own property names either way.
func TestToolsListShowsAsksToClientsThatCannotAsk(t *testing.T) {
	const input = `{"type":"object","properties":{"amount":{"type":"number"}},"required":["amount"]}`
	up := server.NewMCPServer("up", "1", server.WithToolCapabilities(false))
	up.AddTool(mcp.NewToolWithRawSchema("pay", "Pays.", json.RawMessage(input)), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	up.AddTool(mcp.NewToolWithRawSchema("read", "Reads.", json.RawMessage(`{"type":"object"}`)), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	var mu sync.Mutex
	var declared []string
	p := newProxy(t, Options{
		Upstreams: []UpstreamConfig{{Name: "up", URL: startServer(t, up)}},
		Asks: func(tool string) []AskArg {
			if tool == "pay" {
				return []AskArg{{Name: "justification", Description: "for the PIM request; not sent to the tool"}}
			}
			return nil
		},
		Middleware: func(next CallFunc) CallFunc {
			return func(ctx context.Context, c *Call) (Result, error) {
				mu.Lock()
				declared = c.Declared
				mu.Unlock()
				return next(ctx, c)
			}
		},
	})
	const asked = `{"type":"object","properties":{"amount":{"type":"number"},"justification":{"description":"for the PIM request; not sent to the tool","type":"string"}},"required":["amount"]}`
	for _, tc := range []struct {
		name string
		c    func() *client.Client
		want string
	}{
		{"stdio", func() *client.Client { return stdioClient(t, p) }, asked},
		{"stdio eliciting", func() *client.Client {
			return stdioClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithElicitationHandler(elicitor{}))
		}, input},
		{"stdio 2026-07-28 eliciting", func() *client.Client { return stdioClient(t, p, client.WithElicitationHandler(elicitor{})) }, asked},
		{"http", func() *client.Client {
			return httpClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
		}, asked},
		{"http eliciting", func() *client.Client {
			return httpClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithElicitationHandler(elicitor{}))
		}, input},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c()
			var res struct {
				Tools []struct {
					Name        string          `json:"name"`
					InputSchema json.RawMessage `json:"inputSchema"`
				} `json:"tools"`
			}
			if err := json.Unmarshal(rawRequest(t, c, "tools/list", nil), &res); err != nil {
				t.Fatal(err)
			}
			for _, tool := range res.Tools {
				want := map[string]string{"pay": tc.want, "read": `{"type":"object"}`}[tool.Name]
				if got := compact(t, tool.InputSchema); got != want {
					t.Errorf("%s inputSchema\n got %s\nwant %s", tool.Name, got, want)
				}
			}
			if _, err := callTool(t.Context(), c, "pay", map[string]any{"amount": 1}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(declared, []string{"amount"}) {
				t.Fatalf("Declared = %q", declared)
			}
		})
	}
}

type userAnswers struct{ got chan mcp.ElicitationParams }

func (a userAnswers) Elicit(_ context.Context, r mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	a.got <- r.Params
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"justification": "from the user"}}}, nil
}

// A call of a client that declared elicitation can ask its user, on the
// call's own session; other clients' calls cannot.
func TestCallElicitReachesTheCallersUser(t *testing.T) {
	url, _ := startUpstream(t, "up")
	p := newProxy(t, Options{
		Upstreams: []UpstreamConfig{{Name: "up", URL: url}},
		Middleware: func(next CallFunc) CallFunc {
			return func(ctx context.Context, c *Call) (Result, error) {
				if c.Elicit == nil {
					return ToolErrorResult("cannot ask"), nil
				}
				res, err := c.Elicit(ctx, mcp.ElicitationParams{Message: "why?", RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"justification": map[string]any{"type": "string"}}}})
				if err != nil {
					return nil, err
				}
				b, _ := json.Marshal(res.Content)
				return ToolErrorResult(string(res.Action) + " " + string(b)), nil
			}
		},
	})
	for _, tc := range []struct {
		name  string
		c     func(userAnswers) *client.Client
		want  string
		asked bool
	}{
		{"http", func(userAnswers) *client.Client {
			return httpClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
		}, "cannot ask", false},
		{"http eliciting", func(a userAnswers) *client.Client {
			return httpClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithElicitationHandler(a))
		}, `accept {"justification":"from the user"}`, true},
		{"stdio", func(userAnswers) *client.Client { return stdioClient(t, p) }, "cannot ask", false},
		{"stdio eliciting", func(a userAnswers) *client.Client {
			return stdioClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithElicitationHandler(a))
		}, `accept {"justification":"from the user"}`, true},
		// 2026-07-28 has no requests to the client, whatever it declares.
		{"stdio 2026-07-28 eliciting", func(a userAnswers) *client.Client { return stdioClient(t, p, client.WithElicitationHandler(a)) }, "cannot ask", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := userAnswers{got: make(chan mcp.ElicitationParams, 1)}
			res, err := callTool(t.Context(), tc.c(a), "echo", map[string]any{"text": "x"})
			if err != nil {
				t.Fatal(err)
			}
			if text := res.Content[0].(mcp.TextContent).Text; text != tc.want {
				t.Fatalf("answer %q, want %q", text, tc.want)
			}
			if asked := len(a.got) == 1; asked != tc.asked {
				t.Fatalf("asked = %v", asked)
			}
		})
	}
}
