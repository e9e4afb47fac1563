package pimtest

import (
	"fmt"
	"strings"
)

// clause is one `field eq 'value'` term of an OData $filter.
type clause struct{ field, value string }

// parseFilter reads the subset of OData $filter the PIM endpoints are
// queried with: `field eq 'value'` terms joined by `and`, ” escaping a
// quote. Fields outside allowed are refused, as Graph refuses filters on
// properties it cannot filter by.
func parseFilter(s string, allowed ...string) ([]clause, error) {
	var out []clause
	rest := strings.TrimSpace(s)
	for rest != "" {
		field, after, ok := strings.Cut(rest, " ")
		if !ok {
			return nil, fmt.Errorf("invalid filter clause: %q", s)
		}
		known := false
		for _, a := range allowed {
			if strings.EqualFold(a, field) {
				field, known = a, true
			}
		}
		if !known {
			return nil, fmt.Errorf("invalid filter clause: property %q is not supported", field)
		}
		after = strings.TrimLeft(after, " ")
		op, after, ok := strings.Cut(after, " ")
		if !ok || !strings.EqualFold(op, "eq") {
			return nil, fmt.Errorf("invalid filter clause: only eq is supported in %q", s)
		}
		value, after, err := quoted(strings.TrimLeft(after, " "))
		if err != nil {
			return nil, fmt.Errorf("invalid filter clause %q: %w", s, err)
		}
		out = append(out, clause{field, value})
		rest = strings.TrimSpace(after)
		if rest == "" {
			break
		}
		conj, after, ok := strings.Cut(rest, " ")
		if !ok || !strings.EqualFold(conj, "and") {
			return nil, fmt.Errorf("invalid filter clause: only and joins terms in %q", s)
		}
		rest = strings.TrimSpace(after)
		if rest == "" {
			return nil, fmt.Errorf("invalid filter clause: dangling and in %q", s)
		}
	}
	return out, nil
}

// quoted reads a single-quoted OData string literal from the start of s.
func quoted(s string) (value, rest string, err error) {
	if !strings.HasPrefix(s, "'") {
		return "", "", fmt.Errorf("value must be a quoted string")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", fmt.Errorf("unterminated string")
}

// matches reports whether get yields, for every clause, a value equal to
// the clause's (case-insensitively, as Graph compares these properties).
func matches(cs []clause, get func(field string) string) bool {
	for _, c := range cs {
		if !strings.EqualFold(get(c.field), c.value) {
			return false
		}
	}
	return true
}
