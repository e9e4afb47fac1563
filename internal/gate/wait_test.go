package gate

import (
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

func TestWaitFor(t *testing.T) {
	const byClient = "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\ntools:\n  a: {role: R}\n"
	tests := []struct {
		name   string
		policy string
		client string
		want   time.Duration
	}{
		{"Claude Desktop gives up at 60 s", byClient, "claude-ai", 45 * time.Second},
		{"Claude Code resets on progress", byClient, "claude-code", 10 * time.Minute},
		{"an unknown client gets the SDK default's", byClient, "my-agent", 45 * time.Second},
		{"Cursor gives up at 5 min", byClient, "cursor-vscode", 4*time.Minute + 45*time.Second},
		{"the policy's wait overrides", "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\n  wait: 3m\ntools:\n  a: {role: R}\n", "claude-ai", 3 * time.Minute},
		{"wait 0 is a receipt at once", "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\n  wait: 0s\ntools:\n  a: {role: R}\n", "claude-code", 0},
		{"wait \"\" is by client", "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\n  wait: \"\"\ntools:\n  a: {role: R}\n", "claude-ai", 45 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, _, err := policy.Parse("p.yaml", []byte(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			if got := waitFor(pol.Approvals(), proxy.ClientInfo{Name: tt.client}); got != tt.want {
				t.Errorf("waitFor(%q) = %v, want %v", tt.client, got, tt.want)
			}
		})
	}
}
