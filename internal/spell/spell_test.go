package spell

import "testing"

func TestClosest(t *testing.T) {
	commands := []string{"serve", "check", "explain", "audit", "version", "help"}
	tests := []struct {
		word       string
		candidates []string
		want       string
	}{
		{"verison", commands, "version"},
		{"serv", commands, "serve"},
		{"CHEK", commands, "check"},
		{"bogus", commands, ""},
		{"", commands, ""},
		{"tenantID", []string{"backend", "tenantId", "principalId"}, "tenantId"},
		{"tool", []string{"version", "tools", "audit"}, "tools"},
		{"anything", nil, ""},
	}
	for _, tt := range tests {
		if got := Closest(tt.word, tt.candidates); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}
