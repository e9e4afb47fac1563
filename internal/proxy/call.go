package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// ClientInfo names the client software, as it introduced itself.
type ClientInfo struct {
	Name    string
	Version string
}

// Call is one tools/call on its way to an upstream.
type Call struct {
	Tool         string          // the tool name the client sees (NAME__TOOL with several upstreams)
	Upstream     string          // the owning upstream's name
	UpstreamTool string          // the tool's name at the upstream
	Arguments    json.RawMessage // arguments exactly as the client sent them (may be nil)
	Client       ClientInfo
	SessionID    string
	// Principal is the caller's Entra object id when the HTTP front
	// authenticated the request (serve.auth); empty otherwise, and the
	// gate then acts for its own credential's principal.
	Principal string
	// Progress sends notifications/progress to the client with the client's
	// own progress token; nil when the client gave no progress token.
	Progress func(ctx context.Context, progress float64, message string)
	// Wait is how long the client waits for the answer, when the proxy
	// knows it (a call under a task, see tasks.go); zero when only the
	// client's kind says how long it waits.
	Wait time.Duration
	// Elicit asks the client's user (elicitation/create in form mode) on
	// this call's session; nil when the client cannot: it declared no
	// form elicitation, or speaks 2026-07-28, which has no requests to the
	// client.
	Elicit func(ctx context.Context, params mcp.ElicitationParams) (*mcp.ElicitationResult, error)
	// Declared is the tool's own top-level inputSchema property names,
	// filled in for the tools whose rules may need arguments of the
	// gate's (see Options.Asks): an argument the tool declares is the
	// tool's, and reaches it.
	Declared []string

	// meta is the client's params._meta, forwarded to the upstream.
	meta json.RawMessage
	// relay re-sends upstream progress to the client; nil without a token.
	relay progressFunc
	// task: the upstream runs this tool only as a task.
	task bool
}

type principalKey struct{}

// WithPrincipal marks the requests served under ctx as made by principal,
// an Entra object id: the calls they carry are that principal's.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

func principalFrom(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// progressFunc delivers one progress notification to a client.
type progressFunc func(progress float64, total *float64, message string)

// Result is a raw JSON CallToolResult, forwarded as-is when it comes from an
// upstream.
type Result = json.RawMessage

// CallFunc forwards (or answers) one call. An error becomes a JSON-RPC error
// to the client; an *RPCError keeps its code.
type CallFunc func(ctx context.Context, c *Call) (Result, error)

// Middleware wraps the forwarder; the gate is one.
type Middleware func(next CallFunc) CallFunc

// AskArg is an argument the Middleware takes from the caller for itself,
// never forwarded, when the client cannot ask its user for the value:
// tools/list adds it to the tool's inputSchema for such clients.
type AskArg struct {
	Name        string
	Description string
}

// ToolFilter rewrites tools/list: it returns false to hide a tool and may
// change the tool (its description, say) in place.
type ToolFilter func(t *mcp.Tool) bool

// ToolErrorResult builds a CallToolResult with isError:true and one text
// content.
func ToolErrorResult(text string) Result {
	q, _ := json.Marshal(text) // a string always marshals
	b := make([]byte, 0, len(q)+64)
	b = append(b, `{"content":[{"type":"text","text":`...)
	b = append(b, q...)
	return append(b, `}],"isError":true}`...)
}

// RPCError is a JSON-RPC error answer, relayed to the client with its code.
type RPCError struct {
	Code    int
	Message string
	Data    json.RawMessage
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message)
}

// CancelledError is the cause of a call's context when the client cancelled
// the call (notifications/cancelled), with the reason it gave.
type CancelledError struct {
	Reason string
}

func (e *CancelledError) Error() string {
	if e.Reason == "" {
		return "cancelled by the client"
	}
	return "cancelled by the client: " + e.Reason
}

// ClientTimedOut reports whether the call behind ctx was cancelled because
// the client's own clock ran out (the TypeScript SDK says "McpError: MCP
// error -32001: Request timed out") rather than by its user: a call the
// user still wants, which must not take its PIM request with it.
func ClientTimedOut(ctx context.Context) bool {
	var ce *CancelledError
	if !errors.As(context.Cause(ctx), &ce) {
		return false
	}
	r := strings.ToLower(ce.Reason)
	return strings.Contains(r, "timed out") || strings.Contains(r, "timeout")
}
