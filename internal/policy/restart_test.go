package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRestartOnly(t *testing.T) {
	const base = "version: 1\n" +
		"approvals: {tenantId: 00000000-1111-2222-3333-444444444444, wait: 1m}\n" +
		"audit: {path: /var/log/a.jsonl}\n" +
		"upstreams:\n  db: {command: [./db]}\n  gh: {url: \"https://h/mcp\"}\n" +
		"tools: {a: {role: R}}\n"
	tests := []struct {
		name    string
		running string
		edit    func(string) string
		want    []string
	}{
		{"nothing changed", base, func(s string) string { return s }, nil},
		{"only rules", base, func(s string) string { return strings.Replace(s, "a: {role: R}", "a: deny, b: {role: S}", 1) }, nil},
		{"rule defaults", base, func(s string) string {
			return strings.Replace(s, "wait: 1m}", "wait: 1m, defaultGrant: 5m, justification: \"{{.Tool}} by an agent\", ticketSystem: jira}", 1)
		}, nil},
		{"wait set where it was not", strings.Replace(base, "wait: 1m", "grantMargin: 10s", 1), func(s string) string {
			return strings.Replace(s, "grantMargin: 10s", "grantMargin: 10s, wait: 4m", 1)
		}, []string{"approvals.wait"}},
		{"audit arguments", base, func(s string) string { return strings.Replace(s, "a.jsonl}", "a.jsonl, arguments: clear}", 1) }, []string{"audit.arguments"}},
		{"audit section removed", base, func(s string) string { return strings.Replace(s, "audit: {path: /var/log/a.jsonl}\n", "", 1) }, []string{"audit.path"}},
		{"approvals and upstreams", base, func(s string) string {
			s = strings.Replace(s, "wait: 1m}", "wait: 2m, credential: azurecli}", 1)
			s = strings.Replace(s, "[./db]", "[./db, --rw]", 1)
			s = strings.Replace(s, "  gh: {url: \"https://h/mcp\"}\n", "  fs: {command: [./fs]}\n", 1)
			return s
		}, []string{"approvals.credential", "approvals.wait", "upstreams.db", "upstreams.fs", "upstreams.gh"}},
		{"ui page", base, func(s string) string { return strings.Replace(s, "tools:", "ui: {listen: \":8765\"}\ntools:", 1) }, []string{"ui.listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running, _ := mustParse(t, tt.running)
			reloaded, _ := mustParse(t, tt.edit(tt.running))
			if got := RestartOnly(running, reloaded); !slices.Equal(got, tt.want) {
				t.Fatalf("RestartOnly = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRestartOnlyKnowsEveryKey: every key of approvals: and audit: has a
// field of the same name, and every field belongs to a key, so that a new
// setting cannot slip past the list of what waits for a restart.
func TestRestartOnlyKnowsEveryKey(t *testing.T) {
	for _, s := range []struct {
		keys []string
		typ  reflect.Type
	}{{approvalsKeys, reflect.TypeFor[Approvals]()}, {auditKeys, reflect.TypeFor[Audit]()}, {uiKeys, reflect.TypeFor[UI]()}} {
		for _, key := range s.keys {
			if _, ok := s.typ.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, key) }); !ok {
				t.Errorf("%s has no field for the key %s", s.typ, key)
			}
		}
		for i := range s.typ.NumField() {
			name := s.typ.Field(i).Name
			if !slices.ContainsFunc(s.keys, func(key string) bool { return fieldOf(name, key) }) {
				t.Errorf("%s.%s belongs to no key of %q", s.typ, name, s.keys)
			}
		}
	}
}
