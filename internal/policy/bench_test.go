package policy

import (
	"fmt"
	"strings"
	"testing"
)

// bigPolicy builds a policy of n rules: exact tool names, with every tenth
// rule a glob. Half the globs have a literal prefix (svc0009__*_admin),
// half start with a wildcard (*__op0019), so both indexes carry load.
func bigPolicy(b *testing.B, n int) *Policy {
	b.Helper()
	var src strings.Builder
	src.WriteString("version: 1\napprovals: {tenantId: 00000000-1111-2222-3333-444444444444, credential: token}\ntools:\n")
	for i := range n {
		switch {
		case i%20 == 9:
			fmt.Fprintf(&src, "  \"svc%04d__*_admin\": {role: Admins %d}\n", i, i)
		case i%20 == 19:
			fmt.Fprintf(&src, "  \"*__op%04d\": deny\n", i)
		default:
			fmt.Fprintf(&src, "  svc%04d__tool: allow\n", i)
		}
	}
	p, _, err := Parse("policies.yaml", []byte(src.String()))
	if err != nil {
		b.Fatal(err)
	}
	if p.Rules() != n {
		b.Fatalf("built %d rules, want %d", p.Rules(), n)
	}
	return p
}

func BenchmarkDecide(b *testing.B) {
	p := bigPolicy(b, 10_000)
	cases := []struct {
		name   string
		tool   string
		action Action
		rule   string
	}{
		{"exact-hit", "svc9998__tool", Allow, "policies.yaml:10002"},
		{"prefix-glob-hit-near-end", "svc9989__users_admin", Activate, "policies.yaml:9993"},
		{"suffix-glob-hit-near-end", "any__op9999", Deny, "policies.yaml:10003"},
		{"no-match", "other__tool", Deny, "policies.yaml"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if d := p.Decide(c.tool, nil); d.Action != c.action || d.Rule != c.rule {
				b.Fatalf("Decide(%q) = %v at %s, want %v at %s", c.tool, d.Action, d.Rule, c.action, c.rule)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(c.tool, nil)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	var src strings.Builder
	src.WriteString("version: 1\ntools:\n")
	for i := range 10_000 {
		fmt.Fprintf(&src, "  svc%04d__tool: allow\n", i)
	}
	data := []byte(src.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse("policies.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideUnindexed is the worst case: globs with a wildcard at both
// ends (*mid0001*) have no literal prefix or suffix to index by, so a name
// that matches none of them is tried against each.
func BenchmarkDecideUnindexed(b *testing.B) {
	var src strings.Builder
	src.WriteString("version: 1\ntools:\n")
	for i := range 1_000 {
		fmt.Fprintf(&src, "  \"*mid%04d*\": allow\n", i)
	}
	p, _, err := Parse("policies.yaml", []byte(src.String()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Decide("svc__some_tool", nil)
	}
}
