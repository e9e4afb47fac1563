package policy

import (
	"encoding/json"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/unicode/norm"

	"github.com/mcp-gate/mcp-gate/internal/callargs"
)

// The gate cannot know how an upstream reads a value: a file server cleans
// "/srv/x/../finance" into "/srv/finance", a database may ignore case or
// trim spaces, a tool may act on every element of an array. So a condition
// is tested against every reasonable reading of the value, and the stricter
// rule wins: a condition on a role or deny alternative holds when ANY
// reading of ANY value matches its glob; a condition on an allow
// alternative holds only when EVERY reading of EVERY value does, and there
// is at least one value. docs/policy.md lists the readings.

// condHolds reports whether c holds for args; every is set for allow
// alternatives.
func condHolds(c cond, args map[string]any, every bool) bool {
	vals := values(args, c.path, nil)
	if len(vals) == 0 {
		return false // nothing to match: a role or deny does not apply, an allow does not either
	}
	for _, v := range vals {
		if c.matchesValue(v, every) != every {
			return !every
		}
	}
	return every
}

// matchesValue reports whether any (every, when every is set) reading of v
// matches c's glob. Each reading is tried as it is against the glob and
// case-folded against the folded glob: two readings.
func (c cond) matchesValue(v any, every bool) bool {
	for _, r := range readings(v) {
		for _, m := range [2]bool{match(c.glob, r), match(c.globFold, callargs.Fold(r))} {
			if m != every {
				return m
			}
		}
	}
	return every
}

// values appends to out the values at path below v. Keys match
// case-insensitively (callargs refuses keys equal under case folding, so at
// most one does); a path element that is a number indexes an array; an
// array met with any other key, or at the end of the path, stands for each
// of its elements. JSON null and missing values add nothing.
func values(v any, path []string, out []any) []any {
	if len(path) == 0 {
		switch x := v.(type) {
		case nil:
		case []any:
			for _, e := range x {
				out = values(e, nil, out)
			}
		default:
			out = append(out, v)
		}
		return out
	}
	switch x := v.(type) {
	case map[string]any:
		if e, ok := lookupKey(x, path[0]); ok {
			out = values(e, path[1:], out)
		}
	case []any:
		if i, err := strconv.Atoi(path[0]); err == nil {
			if i >= 0 && i < len(x) {
				out = values(x[i], path[1:], out)
			}
			return out
		}
		for _, e := range x {
			out = values(e, path, out)
		}
	}
	return out
}

// lookupKey finds key in m, ignoring case as encoding/json's struct binding
// does. It does not allocate.
func lookupKey(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// readings returns the ways an upstream might read v: for a string, as
// written, trimmed, NFKC-normalised and, when it looks like a path, the
// cleaned path (each also case-folded, in matchesValue); for a number, its
// literal and its plain decimal value; objects as compact JSON.
func readings(v any) []string {
	switch x := v.(type) {
	case string:
		return stringReadings(x)
	case json.Number:
		rs := []string{x.String()}
		if f, err := x.Float64(); err == nil {
			if s := strconv.FormatFloat(f, 'f', -1, 64); s != rs[0] {
				rs = append(rs, s)
			}
		}
		return rs
	case float64: // arguments decoded without UseNumber, as in tests
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}
	case bool:
		return []string{strconv.FormatBool(x)}
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil
		}
		return []string{string(b)}
	}
}

func stringReadings(s string) []string {
	rs := make([]string, 1, 5)
	rs[0] = s
	add := func(r string) {
		if !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	trimmed := strings.TrimSpace(s)
	add(trimmed)
	normal := strings.TrimSpace(norm.NFKC.String(trimmed))
	add(normal)
	for _, r := range []string{trimmed, normal} {
		if p, ok := cleanPath(r); ok {
			add(p)
		}
	}
	return rs
}

// cleanPath returns the path s names, when s looks like one: it starts
// with /, \, ~, a drive letter (C:) or file:. Backslashes become slashes,
// a file: URL is percent-decoded, then ., .., repeated and trailing
// slashes are resolved lexically (path.Clean). ~ is not expanded.
func cleanPath(s string) (string, bool) {
	if len(s) >= 5 && strings.EqualFold(s[:5], "file:") {
		s = s[5:]
		if rest, ok := strings.CutPrefix(s, "//"); ok {
			host, p, _ := strings.Cut(rest, "/")
			s = "/" + p
			if host != "" && !strings.EqualFold(host, "localhost") {
				s = "//" + host + s
			}
		}
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
	} else if s == "" || !strings.ContainsRune(`/\~`, rune(s[0])) && !hasDrive(s) {
		return "", false
	}
	s = strings.ReplaceAll(s, `\`, "/")
	drive := ""
	if hasDrive(s) {
		drive, s = s[:2], s[2:]
		if s == "" {
			return drive, true
		}
	}
	return drive + path.Clean(s), true
}

// hasDrive reports whether s starts with a Windows drive letter and colon.
func hasDrive(s string) bool {
	return len(s) >= 2 && s[1] == ':' && ('a' <= s[0]|0x20 && s[0]|0x20 <= 'z')
}
