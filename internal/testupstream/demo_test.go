package testupstream

import (
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

func TestDemoToolsAnswerAndCount(t *testing.T) {
	h := newHarness(t)
	h.srv.AddDemoTools()
	ctx := t.Context()
	tests := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"read_table", map[string]any{"table": "customers"}, "3 rows from customers"},
		{"delete_database", map[string]any{"name": "staging"}, "database staging deleted"},
		{"send_payment", map[string]any{"to": "ACME", "amount": 12.5}, "paid 12.5 EUR to ACME"},
		{"delete_database", map[string]any{"name": "prod"}, "database prod deleted"},
		{"deploy", map[string]any{"repo": "web"}, `deployed "web"`},
		{"restart_app", map[string]any{"app": "web"}, "app web restarted"},
		{"deploy", map[string]any{"REPO": " prod-db"}, `deployed " prod-db"`}, // bound case-insensitively
	}
	for _, tt := range tests {
		res := h.call(t, ctx, tt.tool, tt.args)
		if got := res.Content[0].(mcp.TextContent).Text; got != tt.want || res.IsError {
			t.Errorf("%s: %q (isError %v), want %q", tt.tool, got, res.IsError, tt.want)
		}
	}
	for tool, want := range map[string]string{"deploy": `{"REPO":" prod-db"}`, "echo": "none"} {
		res := h.call(t, ctx, "arguments", map[string]any{"tool": tool})
		if got := res.Content[0].(mcp.TextContent).Text; got != want {
			t.Errorf("arguments %s = %s, want %s", tool, got, want)
		}
	}
	for tool, want := range map[string]string{"delete_database": "2", "send_payment": "1", "read_table": "1", "deploy": "2", "restart_app": "1", "echo": "0"} {
		res := h.call(t, ctx, "calls", map[string]any{"tool": tool})
		if got := res.Content[0].(mcp.TextContent).Text; got != want {
			t.Errorf("calls %s = %s, want %s", tool, got, want)
		}
	}
}
