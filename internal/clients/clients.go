// Package clients knows how long MCP clients wait for a tool call before
// they give up on their own, and so how long mcp-gate may hold a call that
// waits for approval before it must answer with a receipt instead.
//
// A client that gives up first cancels the call, its user sees a timeout
// rather than the receipt, and every retry would start again. The table is
// keyed by the name a client gives in initialize's clientInfo; the limits
// are the clients' documented or observed defaults (docs/clients.md).
package clients

import (
	"strings"
	"time"
)

// Headroom is how long before a client's limit the receipt is sent: the
// answer must cross the process boundary and the client's own queue.
const Headroom = 15 * time.Second

// Limit is what one client does with a long tool call.
type Limit struct {
	Name string // clientInfo.name as the client sends it
	// Product is how people know the client, for docs and logs.
	Product string
	// Timeout is how long the client waits for a tool call's answer.
	Timeout time.Duration
	// Wait is how long the gate holds a call for this client before it
	// answers with a receipt.
	Wait time.Duration
}

// Unknown is the limit assumed for a client not in Known: the official
// TypeScript SDK's default request timeout of 60 s, which most clients
// built on it keep and which progress does not reset unless the caller
// opts in.
var Unknown = Limit{Product: "any other client (TypeScript SDK default)", Timeout: 60 * time.Second, Wait: 60*time.Second - Headroom}

// Known lists the clients whose limits are known, by clientInfo.name.
var Known = []Limit{
	// Claude Desktop gives up after about 60 s on macOS (about 4 min on
	// Windows) whatever the server sends; clientInfo does not say which, so
	// the shorter one holds.
	{Name: "claude-ai", Product: "Claude Desktop", Timeout: 60 * time.Second, Wait: 60*time.Second - Headroom},
	// Claude Code resets its timer on progress, which the gate sends every
	// few seconds while it waits; the wait is bounded by the gate's own
	// patience rather than the client's.
	{Name: "claude-code", Product: "Claude Code", Timeout: 0, Wait: 10 * time.Minute},
	{Name: "cursor-vscode", Product: "Cursor", Timeout: 5 * time.Minute, Wait: 5*time.Minute - Headroom},
	{Name: "Visual Studio Code", Product: "VS Code", Timeout: 5 * time.Minute, Wait: 5*time.Minute - Headroom},
	// The Inspector resets its 10 s request timeout on progress but stops
	// at a total of 60 s.
	{Name: "mcp-inspector", Product: "MCP Inspector", Timeout: 60 * time.Second, Wait: 60*time.Second - Headroom},
}

// Lookup returns the limit for a client by its clientInfo.name, matched
// without regard to case; Unknown when the name is not known.
func Lookup(name string) Limit {
	for _, l := range Known {
		if strings.EqualFold(l.Name, name) {
			return l
		}
	}
	return Unknown
}
