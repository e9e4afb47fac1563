package policy

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mcp-gate/mcp-gate/internal/callargs"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, and
// a file with any error must never produce a policy.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"../../policies.yaml", "testdata/five-mistakes.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(decideSrc))
	for _, tc := range errorCases {
		f.Add([]byte(tc.src))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, problems, err := Parse("fuzz.yaml", data)
		errs := 0
		for _, pr := range problems {
			if pr.File != "fuzz.yaml" || pr.Line < 1 || pr.Col < 1 || pr.Message == "" {
				t.Fatalf("malformed problem %+v", pr)
			}
			if pr.Severity == SeverityError {
				errs++
			}
		}
		if (err != nil) != (errs > 0) || (p == nil) != (err != nil) {
			t.Fatalf("policy %v, err %v, %d errors among %d problems", p != nil, err, errs, len(problems))
		}
		if p == nil {
			if d := p.Decide("tool", nil); d.Action != Deny {
				t.Fatalf("nil policy decided %v", d.Action)
			}
			return
		}
		// The index must agree with a walk of every rule in order.
		for _, e := range p.entries {
			for _, tool := range []string{e.pattern, strings.ReplaceAll(e.pattern, "*", "x"), strings.ReplaceAll(e.pattern, "?", "")} {
				if got, want := p.Decide(tool, nil), p.Explain(tool, nil).Decision; got != want {
					t.Fatalf("Decide(%q) = %+v, rule walk says %+v", tool, got, want)
				}
			}
		}
	})
}

// decidePolicy is parsed once for FuzzDecide.
var decidePolicy, _, _ = Parse("policies.yaml", []byte(decideSrc))

// FuzzDecide checks the matcher three ways: the glob matcher against a
// regular expression, a one-rule policy built from the fuzzed pattern
// (allows exactly what the pattern matches, or is rejected), and the
// indexed Decide against the plain walk of Explain on a fixed policy.
func FuzzDecide(f *testing.F) {
	f.Add("gh__merge", `{"repo":"prod-api","options":{"force":true}}`, "gh__*")
	f.Add("gh__merge_é", `{"labels":["hotfix"],"count":12}`, "gh__merge_?")
	f.Add("db__drop_users", `null`, "*__drop_*")
	f.Add("", `{}`, "*")
	f.Add("a*b", `[1]`, "a?b*")
	f.Fuzz(func(t *testing.T, tool, argsJSON, pattern string) {
		var args map[string]any // nil when the gate would refuse them
		if a, err := callargs.Parse(json.RawMessage(argsJSON)); err == nil {
			args = a.Object()
		}

		d := decidePolicy.Decide(tool, args)
		if ex := decidePolicy.Explain(tool, args); ex.Decision != d {
			t.Fatalf("Decide(%q, %s) = %+v, rule walk says %+v", tool, argsJSON, d, ex.Decision)
		}
		if d.Action == Activate {
			_, _, _ = d.Justify(Call{Tool: tool, Args: args})
		}

		if !utf8.ValidString(tool) || !utf8.ValidString(pattern) {
			return
		}
		want := globRegexp(pattern).MatchString(tool)
		if got := match(pattern, tool); got != want {
			t.Fatalf("match(%q, %q) = %v, regexp says %v", pattern, tool, got, want)
		}
		if !isGlob(tool) && covers(pattern, tool) != want {
			t.Fatalf("covers(%q, %q) = %v, want %v", pattern, tool, !want, want)
		}

		quoted, _ := json.Marshal(pattern) // a JSON string is a YAML double-quoted string
		p, _, err := Parse("one.yaml", []byte("version: 1\ntools:\n  "+string(quoted)+": allow\n"))
		if err != nil {
			if p != nil {
				t.Fatal("an invalid file produced a policy")
			}
			return
		}
		if got := p.Decide(tool, nil).Action == Allow; got != want {
			t.Fatalf("policy {%q: allow} allows %q: %v, want %v", pattern, tool, got, want)
		}
	})
}

// globRegexp is the reference semantics of a pattern: * is any run, ? one
// character, everything else itself.
func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}
