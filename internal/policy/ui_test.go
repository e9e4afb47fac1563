package policy

import "testing"

func TestUI(t *testing.T) {
	auth := "serve:\n  auth: {tenantId: " + serveTenant + ", audience: api://mcp-gate}\n"
	tests := []struct {
		name, section string
		want          UI
	}{
		{"absent", "", UI{}},
		{"port only is loopback", "ui: {listen: \":8765\"}\n", UI{Listen: "127.0.0.1:8765"}},
		{"any free port", "ui: {listen: \"127.0.0.1:0\"}\n", UI{Listen: "127.0.0.1:0"}},
		{"ipv6 loopback", "ui: {listen: \"[::1]:9000\"}\n", UI{Listen: "[::1]:9000"}},
		{"off loopback with serve.auth", auth + "ui: {listen: \"0.0.0.0:8765\", adminRole: mcp-gate.admin}\n",
			UI{Listen: "0.0.0.0:8765", AdminRole: "mcp-gate.admin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := mustParse(t, "version: 1\n"+tt.section+"tools: {a: allow}\n")
			if got := p.UI(); got != tt.want {
				t.Fatalf("UI = %+v, want %+v", got, tt.want)
			}
			if got := p.UI().Enabled(); got != (tt.want.Listen != "") {
				t.Fatalf("Enabled = %v", got)
			}
		})
	}
}

func TestUIProblems(t *testing.T) {
	const tail = "tools: {a: allow}\n"
	runProblemCases(t, []problemCase{
		{"not host:port", "version: 1\nui: {listen: \"8765\"}\n" + tail, []string{
			`p.yaml:2:14: ui.listen: "8765" is not host:port, e.g. 127.0.0.1:8765 or :8765 (loopback)`,
		}},
		{"port out of range", "version: 1\nui: {listen: \":70000\"}\n" + tail, []string{
			`p.yaml:2:14: ui.listen: ":70000" is not host:port, e.g. 127.0.0.1:8765 or :8765 (loopback)`,
		}},
		{"off loopback without serve.auth", "version: 1\nui: {listen: \"0.0.0.0:8765\"}\n" + tail, []string{
			"p.yaml:2:5: ui.listen 0.0.0.0:8765 is not a loopback address: without serve.auth anyone who reaches it sees every user's waiting calls and grants; listen on 127.0.0.1 or set serve.auth",
		}},
		{"admin role with a space", "version: 1\nui: {listen: \":1\", adminRole: \"a b\"}\n" + tail, []string{
			"p.yaml:2:31: ui.adminRole: want one app role value, e.g. mcp-gate.admin",
		}},
		{"unknown key", "version: 1\nui: {listn: 1}\n" + tail, []string{
			`p.yaml:2:6: ui: unknown key "listn" (did you mean "listen"?); allowed: listen, adminRole`,
		}},
	})
}
