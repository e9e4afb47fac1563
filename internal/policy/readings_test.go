package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mcp-gate/mcp-gate/internal/callargs"
)

// readingsSrc has both shapes: a deny-list (role when the path is in
// finance, else allow) and an allow-list (allow under /tmp, else the
// role), plus a deny on repositories and conditions on nested arguments.
const readingsSrc = withApprovals + `  write:
    - when: {path: "/srv/shared/finance/*"}
      role: Finance
    - allow
  put:
    - {when: {path: "/tmp/*"}, action: allow}
    - role: Editors
  merge:
    - {when: {repo: "prod-*"}, action: deny}
    - allow
  copy:
    - {when: {paths: "/tmp/*", options.mode: "copy"}, action: allow}
    - role: Editors
  upload:
    - when: {url: "/srv/shared/finance/*"}
      role: Finance
    - allow
  pay:
    - {when: {amount: "100"}, action: allow}
    - role: Treasury
  limit:
    - {when: {rows: "1000*"}, action: deny}
    - allow
`

func decideJSON(t *testing.T, p *Policy, tool, raw string) Decision {
	t.Helper()
	a, err := callargs.Parse(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("Parse(%s): %v", raw, err)
	}
	d := p.Decide(tool, a.Object())
	if ex := p.Explain(tool, a.Object()); ex.Decision != d {
		t.Fatalf("Explain disagrees with Decide for %s %s: %+v vs %+v", tool, raw, ex.Decision, d)
	}
	return d
}

func TestStricterReadingWins(t *testing.T) {
	p, _ := mustParse(t, readingsSrc)
	tests := []struct {
		name, tool, args string
		want             Action
	}{
		// The deny-list shape: every way of naming a finance file still needs the role.
		{"plain", "write", `{"path":"/srv/shared/finance/q3.xlsx"}`, Activate},
		{"dot-dot", "write", `{"path":"/srv/shared/x/../finance/q3.xlsx"}`, Activate},
		{"double slash", "write", `{"path":"/srv/shared//finance/q3.xlsx"}`, Activate},
		{"dot segment", "write", `{"path":"/srv/shared/./finance/q3.xlsx"}`, Activate},
		{"leading double slash", "write", `{"path":"//srv/shared/finance/q3.xlsx"}`, Activate},
		{"trailing slash", "write", `{"path":"/srv/shared/finance/q3/"}`, Activate},
		{"backslashes", "write", `{"path":"\\srv\\shared\\finance\\q3.xlsx"}`, Activate},
		{"key Path", "write", `{"Path":"/srv/shared/finance/q3.xlsx"}`, Activate},
		{"key PATH", "write", `{"PATH":"/srv/shared/finance/q3.xlsx"}`, Activate},
		{"upper case", "write", `{"path":"/SRV/Shared/FINANCE/q3.xlsx"}`, Activate},
		{"padded", "write", `{"path":"  /srv/shared/finance/q3.xlsx\n"}`, Activate},
		{"fullwidth solidus (NFKC)", "write", `{"path":"／srv／shared／finance／q3.xlsx"}`, Activate},
		{"one element of an array", "write", `{"path":["/tmp/a","/srv/shared/finance/q3.xlsx"]}`, Activate},
		{"nested array", "write", `{"path":[["/tmp/a"],["/srv/shared//finance/q3.xlsx"]]}`, Activate},
		{"file URL", "upload", `{"url":"file:///srv/shared/%66inance/q3.xlsx"}`, Activate},
		{"file URL with localhost and dot-dot", "upload", `{"url":"FILE://localhost/srv/shared/x/../finance/q3.xlsx"}`, Activate},
		{"elsewhere is allowed", "write", `{"path":"/srv/shared/x/q3.xlsx"}`, Allow},
		{"dot-dot out of finance: as written it matches, so the role wins", "write", `{"path":"/srv/shared/finance/../x/q3.xlsx"}`, Activate},
		// A deny on a name: case and padding do not dodge it.
		{"deny as written", "merge", `{"repo":"prod-db"}`, Deny},
		{"deny upper case", "merge", `{"repo":"PROD-db"}`, Deny},
		{"deny leading space", "merge", `{"repo":" prod-db"}`, Deny},
		{"deny fullwidth", "merge", `{"repo":"ｐｒｏｄ-db"}`, Deny},
		{"deny key case", "merge", `{"Repo":"prod-db"}`, Deny},
		{"deny in an array", "merge", `{"repo":["dev","prod-db"]}`, Deny},
		{"not prod", "merge", `{"repo":"dev-db"}`, Allow},
		// The allow-list shape: an allow needs every reading and every element.
		{"allowed under /tmp", "put", `{"path":"/tmp/a.txt"}`, Allow},
		{"allowed key case", "put", `{"PATH":"/tmp/a.txt"}`, Allow},
		{"allowed every element", "put", `{"path":["/tmp/a","/tmp/b"]}`, Allow},
		{"dot-dot out of /tmp", "put", `{"path":"/tmp/../etc/passwd"}`, Activate},
		{"backslash dot-dot out of /tmp", "put", `{"path":"/tmp/a\\..\\..\\etc"}`, Activate},
		{"one element outside", "put", `{"path":["/tmp/a","/etc/passwd"]}`, Activate},
		{"empty array", "put", `{"path":[]}`, Activate},
		{"missing", "put", `{}`, Activate},
		{"null", "put", `{"path":null}`, Activate},
		{"padded", "put", `{"path":" /tmp/a"}`, Activate},
		{"upper case", "put", `{"path":"/TMP/a"}`, Activate},
		{"not a string", "put", `{"path":{"p":"/tmp/a"}}`, Activate},
		// Numbers: the literal and its value.
		{"number as written", "pay", `{"amount":100}`, Allow},
		{"number with exponent", "pay", `{"amount":1e2}`, Activate},
		{"deny on a number's value", "limit", `{"rows":1e6}`, Deny},
		{"deny on a number's literal", "limit", `{"rows":10000.5}`, Deny},
		{"small number passes", "limit", `{"rows":10}`, Allow},
		// Paths through arrays and nested keys, case-insensitively.
		{"nested allow", "copy", `{"paths":["/tmp/a"],"Options":{"MODE":"copy"}}`, Allow},
		{"nested allow, one condition fails", "copy", `{"paths":["/tmp/a"],"options":{"mode":"move"}}`, Activate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := decideJSON(t, p, tc.tool, tc.args); d.Action != tc.want {
				t.Fatalf("%s %s: %v (%s), want %v", tc.tool, tc.args, d.Action, d.Rule, tc.want)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/a/b/../c/", "/a/c", true},
		{"//a//b", "/a/b", true},
		{`C:\Users\x\..\y`, "C:/Users/y", true},
		{"c:", "c:", true},
		{`\\server\share\..\x`, "/server/x", true},
		{"~/a/./b", "~/a/b", true},
		{"file:///a/%2e%2e/b", "/b", true},
		{"file://host/a", "/host/a", true},
		{"file:a/../b", "b", true},
		{"file:///a/%zz", "/a/%zz", true},
		{"relative/../x", "", false},
		{"prod-db", "", false},
		{"", "", false},
		{"1:", "", false},
	}
	for _, tc := range tests {
		got, ok := cleanPath(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("cleanPath(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// variants are spellings an upstream would read as the same value v: the
// ones a condition on a role or deny must not miss.
func variants(v string, pick uint8) []string {
	out := []string{v, " " + v, v + "\t", strings.ToUpper(v), strings.ToLower(v)}
	if strings.HasPrefix(v, "/") {
		out = append(out,
			"/"+v,
			strings.ReplaceAll(v, "/", "//"),
			strings.ReplaceAll(v, "/", "/./"),
			strings.Replace(v, "/", "/zz/../", 1+int(pick%3)),
			strings.ReplaceAll(v, "/", `\`),
			v+"/",
			"file://"+v,
		)
	}
	return out
}

// FuzzReadings checks the reading rule against independently built
// spellings: when the plain value matches a glob, every variant of it makes
// a role or deny condition hold (inside an array too), and no variant that
// reads differently passes an allow condition unless the plain value does.
func FuzzReadings(f *testing.F) {
	f.Add("/srv/shared/finance/q3.xlsx", "/srv/shared/finance/*", uint8(0))
	f.Add("prod-db", "prod-*", uint8(1))
	f.Add("/tmp/a", "/tmp/*", uint8(2))
	f.Add("/srv/a/b", "*/a/*", uint8(3))
	f.Fuzz(func(t *testing.T, value, glob string, pick uint8) {
		if !utf8.ValidString(value) || !utf8.ValidString(glob) || strings.ContainsAny(value, "*?%") {
			return
		}
		// A value that is already in the form every reading reaches.
		if p, ok := cleanPath(value); ok && p != value {
			return
		}
		if value != strings.TrimSpace(value) {
			return
		}
		guard := cond{key: "v", path: []string{"v"}, glob: glob, globFold: callargs.Fold(glob)}
		// Whatever the value: a role condition that does not hold means no
		// reading matches, and an allow condition that holds means all do.
		if raw := map[string]any{"v": value}; !condHolds(guard, raw, false) || condHolds(guard, raw, true) {
			for _, r := range readings(value) {
				if m := match(glob, r); m != condHolds(guard, raw, true) && m {
					t.Fatalf("role condition %q does not hold for %q, yet its reading %q matches", glob, value, r)
				} else if !m && condHolds(guard, raw, true) {
					t.Fatalf("allow condition %q holds for %q, yet its reading %q does not match", glob, value, r)
				}
			}
		}
		plain := match(glob, value)
		for _, v := range variants(value, pick) {
			args := map[string]any{"v": v}
			inArray := map[string]any{"v": []any{"unrelated", v}}
			if plain && (!condHolds(guard, args, false) || !condHolds(guard, inArray, false)) {
				t.Fatalf("%q matches %q, but a role condition misses its spelling %q", value, glob, v)
			}
			if condHolds(guard, args, true) {
				for _, r := range readings(v) {
					if !match(glob, r) {
						t.Fatalf("an allow condition %q passes %q, whose reading %q does not match", glob, v, r)
					}
				}
			}
			if condHolds(guard, args, true) && !condHolds(guard, args, false) {
				t.Fatalf("%q passes an allow condition %q but not a role one", v, glob)
			}
		}
	})
}
