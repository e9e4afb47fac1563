package testupstream

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// demoTools stand for what a real database or payments server offers, so the
// demo and the gate's end-to-end tests read like the calls mcp-gate guards.
// Each counts its calls, and the calls tool reports the counts, so a test
// can prove that a refused call never reached the upstream.
type demoTools struct {
	mu    sync.Mutex
	calls map[string]int
	last  map[string]json.RawMessage // each tool's last arguments, as received
}

// AddDemoTools registers read_table, delete_database, send_payment, deploy,
// restart_app, calls and arguments.
func (s *Server) AddDemoTools() {
	d := &demoTools{calls: make(map[string]int), last: make(map[string]json.RawMessage)}
	s.mcp.AddTool(mcp.NewTool("read_table",
		mcp.WithDescription("Reads the rows of a database table."),
		mcp.WithString("table", mcp.Required(), mcp.Description("Table name")),
		mcp.WithReadOnlyHintAnnotation(true),
	), d.handler("read_table", func(req mcp.CallToolRequest) string {
		return fmt.Sprintf("3 rows from %s", req.GetString("table", ""))
	}))
	s.mcp.AddTool(mcp.NewTool("delete_database",
		mcp.WithDescription("Deletes a database and everything in it."),
		mcp.WithString("name", mcp.Required(), mcp.Description("Database name")),
		mcp.WithDestructiveHintAnnotation(true),
	), d.handler("delete_database", func(req mcp.CallToolRequest) string {
		return fmt.Sprintf("database %s deleted", req.GetString("name", ""))
	}))
	s.mcp.AddTool(mcp.NewTool("send_payment",
		mcp.WithDescription("Sends a payment."),
		mcp.WithString("to", mcp.Required(), mcp.Description("Payee")),
		mcp.WithNumber("amount", mcp.Required(), mcp.Description("Amount in EUR")),
		mcp.WithDestructiveHintAnnotation(true),
	), d.handler("send_payment", func(req mcp.CallToolRequest) string {
		return fmt.Sprintf("paid %v EUR to %s", req.GetFloat("amount", 0), req.GetString("to", ""))
	}))
	s.mcp.AddTool(mcp.NewTool("deploy",
		mcp.WithDescription("Deploys a repository. Like most Go servers it binds its arguments into a struct with encoding/json, so an argument's name matches whatever its case, and of a name given twice the last wins."),
		mcp.WithString("repo", mcp.Required(), mcp.Description("Repository name")),
		mcp.WithDestructiveHintAnnotation(true),
	), d.handler("deploy", func(req mcp.CallToolRequest) string {
		var args struct {
			Repo string `json:"repo"`
		}
		if err := req.BindArguments(&args); err != nil {
			return "cannot read the arguments: " + err.Error()
		}
		return fmt.Sprintf("deployed %q", args.Repo)
	}))
	s.mcp.AddTool(mcp.NewTool("restart_app",
		mcp.WithDescription("Restarts an Azure web app, as an Azure MCP server's tool would."),
		mcp.WithString("app", mcp.Required(), mcp.Description("Web app name")),
		mcp.WithDestructiveHintAnnotation(true),
	), d.handler("restart_app", func(req mcp.CallToolRequest) string {
		return fmt.Sprintf("app %s restarted", req.GetString("app", ""))
	}))
	s.mcp.AddTool(mcp.NewTool("calls",
		mcp.WithDescription("How many times a demo tool has run."),
		mcp.WithString("tool", mcp.Required(), mcp.Description("Tool name")),
		mcp.WithReadOnlyHintAnnotation(true),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		d.mu.Lock()
		n := d.calls[req.GetString("tool", "")]
		d.mu.Unlock()
		return mcp.NewToolResultText(fmt.Sprint(n)), nil
	})
	s.mcp.AddTool(mcp.NewTool("arguments",
		mcp.WithDescription("The arguments the last call of a demo tool carried, as it received them (none when it has not run)."),
		mcp.WithString("tool", mcp.Required(), mcp.Description("Tool name")),
		mcp.WithReadOnlyHintAnnotation(true),
	), d.arguments)
}

func (d *demoTools) arguments(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	d.mu.Lock()
	last, ok := d.last[req.GetString("tool", "")]
	d.mu.Unlock()
	if !ok {
		return mcp.NewToolResultText("none"), nil
	}
	return mcp.NewToolResultText(string(last)), nil
}

func (d *demoTools) handler(name string, answer func(mcp.CallToolRequest) string) func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		raw := req.Params.RawArguments
		if len(raw) == 0 {
			raw, _ = json.Marshal(req.Params.Arguments)
		}
		d.mu.Lock()
		d.calls[name]++
		d.last[name] = raw
		d.mu.Unlock()
		return mcp.NewToolResultText(answer(req)), nil
	}
}
