package clients

import (
	"testing"
	"time"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name string
		want time.Duration
	}{
		{"claude-ai", 45 * time.Second},
		{"CLAUDE-AI", 45 * time.Second},
		{"claude-code", 10 * time.Minute},
		{"cursor-vscode", 4*time.Minute + 45*time.Second},
		{"Visual Studio Code", 4*time.Minute + 45*time.Second},
		{"mcp-inspector", 45 * time.Second},
		{"", 45 * time.Second},
		{"some-new-client", 45 * time.Second},
	}
	for _, tt := range tests {
		if got := Lookup(tt.name).Wait; got != tt.want {
			t.Errorf("Lookup(%q).Wait = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// Every wait must leave the client time to receive the receipt before its
// own limit: a client that gives up first shows a timeout, not the receipt.
func TestEveryWaitIsBelowItsClientsLimit(t *testing.T) {
	for _, l := range append(Known, Unknown) {
		if l.Wait <= 0 {
			t.Errorf("%s: wait %v is not positive", l.Product, l.Wait)
		}
		if l.Timeout > 0 && l.Wait > l.Timeout-Headroom {
			t.Errorf("%s: wait %v leaves less than %v before the client's %v limit", l.Product, l.Wait, Headroom, l.Timeout)
		}
	}
}
