// Package callargs reads a tool call's arguments once, strictly, so that the
// gate decides on, audits and forwards one and the same thing. Arguments a
// JSON parser could read more than one way are refused rather than guessed
// at: a duplicate key (most parsers keep the last value, some the first),
// two keys equal under Unicode case folding (encoding/json and other
// struct binders match field names case-insensitively, so the upstream may
// read either), invalid UTF-8 or a lone UTF-16 surrogate escape (replaced
// by U+FFFD in some parsers, kept or refused by others), and top-level
// arguments that are not an object.
package callargs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxDepth is how deeply arguments may nest; deeper ones are refused.
const MaxDepth = 64

// Args is a call's arguments after the strict reading.
type Args struct {
	raw json.RawMessage
	obj map[string]any
}

// Raw is the arguments exactly as the client sent them (empty or null when
// it sent none). The gate forwards these bytes: once Parse has accepted
// them, nothing in them is left to a parser's choice (RFC 8259 leaves
// duplicate names and invalid characters to it), so every parser finds the
// keys and values the gate decided on, and each value, number literals
// included, is byte for byte what the policy matched. A re-encoding would
// add nothing to that and would change what the client asked for (a
// number's spelling, a large integer's digits).
func (a *Args) Raw() json.RawMessage { return a.raw }

// Object is the decoded arguments: objects as map[string]any, arrays as
// []any, numbers as json.Number (their literal), strings, booleans and nil.
// It is empty, not nil, when the client sent no arguments. Callers must not
// change it.
func (a *Args) Object() map[string]any { return a.obj }

// Error says why arguments were refused, in a sentence for the caller.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

func errorf(format string, args ...any) error {
	return &Error{msg: fmt.Sprintf(format, args...)}
}

// Parse reads raw strictly. Empty (or all-whitespace) input and JSON null
// stand for no arguments, as MCP has it. Every error is an *Error.
func Parse(raw json.RawMessage) (*Args, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return &Args{raw: raw, obj: map[string]any{}}, nil
	}
	if !utf8.Valid(raw) {
		return nil, errorf("the arguments are not valid UTF-8")
	}
	if err := checkSurrogates(raw); err != nil {
		return nil, err
	}
	if trimmed[0] != '{' {
		return nil, errorf("the arguments must be a JSON object, got %s", kind(trimmed[0]))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := value(dec, &path{}, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errorf("the arguments have data after the JSON object")
	}
	return &Args{raw: raw, obj: v.(map[string]any)}, nil
}

// value decodes the next JSON value. at is where it is, kept as a stack so
// that a path is only spelt out for an error message.
func value(dec *json.Decoder, at *path, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= MaxDepth {
		return nil, errorf("the arguments nest deeper than %d levels", MaxDepth)
	}
	switch d {
	case '[':
		arr := []any{}
		for dec.More() {
			at.push("", len(arr))
			e, err := value(dec, at, depth+1)
			if err != nil {
				return nil, err
			}
			at.pop()
			arr = append(arr, e)
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntax(err)
		}
		return arr, nil
	case '{':
		obj := map[string]any{}
		folded := map[string]string{} // folded key -> key as written
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, syntax(err)
			}
			key := tok.(string) // the decoder only yields strings as object keys
			f := Fold(key)
			if other, dup := folded[f]; dup {
				if other == key {
					return nil, errorf("the arguments have the key %s twice", strconv.Quote(at.with(key)))
				}
				return nil, errorf("the arguments have keys %s and %s, which differ only in case; a tool may read either", strconv.Quote(at.with(other)), strconv.Quote(at.with(key)))
			}
			folded[f] = key
			at.push(key, -1)
			v, err := value(dec, at, depth+1)
			if err != nil {
				return nil, err
			}
			at.pop()
			obj[key] = v
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntax(err)
		}
		return obj, nil
	}
	return nil, errorf("the arguments are not valid JSON") // a closing delimiter where a value belongs
}

// path is where in the arguments the parser is: keys, or array indexes.
type path []struct {
	key   string
	index int // -1 for a key
}

func (p *path) push(key string, index int) {
	*p = append(*p, struct {
		key   string
		index int
	}{key, index})
}

func (p *path) pop() { *p = (*p)[:len(*p)-1] }

// with spells out the path to key, as a.b[0].c.
func (p *path) with(key string) string {
	var b strings.Builder
	for _, s := range *p {
		if s.index >= 0 {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(key)
	return b.String()
}

func syntax(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf("the arguments are not valid JSON: they end too soon")
	}
	return errorf("the arguments are not valid JSON: %v", err)
}

func kind(first byte) string {
	switch first {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number or invalid JSON"
	}
}

// checkSurrogates refuses \u escapes that encode half of a UTF-16
// surrogate pair without the other half: they stand for no character, and
// parsers disagree on what to make of them. raw must be valid UTF-8; its
// JSON syntax is checked later, so a malformed escape is left to that.
func checkSurrogates(raw []byte) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && i+1 < len(raw):
			i++
			if raw[i] != 'u' {
				continue
			}
			r, ok := hex4(raw, i+1)
			if !ok {
				continue
			}
			i += 4
			switch {
			case 0xDC00 <= r && r <= 0xDFFF:
				return errorf("the arguments contain a lone UTF-16 surrogate (\\u%04x), which is no character", r)
			case 0xD800 <= r && r <= 0xDBFF:
				lo, ok := rune(0), i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u'
				if ok {
					lo, ok = hex4(raw, i+3)
				}
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return errorf("the arguments contain a lone UTF-16 surrogate (\\u%04x), which is no character", r)
				}
				i += 6
			}
		}
	}
	return nil
}

// hex4 reads four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[i:i+4]), 16, 32)
	return rune(n), err == nil
}

// Fold maps s to a key that is equal for two strings exactly when
// strings.EqualFold says they are equal, as encoding/json folds field
// names: every rune becomes the smallest rune of its case-folding orbit,
// written in lower case when that is an ASCII letter (so that the usual
// key, lower-case ASCII, is its own fold and costs nothing).
func Fold(s string) string {
	if folded(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = utf8.AppendRune(b, foldRune(r))
	}
	return string(b)
}

// folded reports whether s is ASCII without upper-case letters, so that
// Fold(s) is s.
func folded(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			if 'A' <= r2 && r2 <= 'Z' {
				r2 += 'a' - 'A'
			}
			return r2
		}
		r = r2
	}
}

// Without returns the arguments less the top-level members whose names
// equal one of names under case folding (as the policy reads names), and
// the names removed as the client wrote them. Every other member keeps its
// bytes, so what remains is still exactly what the client sent of it.
func (a *Args) Without(names ...string) (*Args, []string) {
	drop := func(key string) bool {
		for _, n := range names {
			if Fold(n) == Fold(key) {
				return true
			}
		}
		return false
	}
	var removed []string
	for k := range a.obj {
		if drop(k) {
			removed = append(removed, k)
		}
	}
	if len(removed) == 0 {
		return a, nil
	}
	// a.raw parsed already: the decoder cannot fail on it.
	dec := json.NewDecoder(bytes.NewReader(a.raw))
	_, _ = dec.Token() // {
	out := []byte{'{'}
	obj := make(map[string]any, len(a.obj)-len(removed))
	for dec.More() {
		tok, _ := dec.Token()
		key := tok.(string)
		keyEnd := dec.InputOffset()
		var v json.RawMessage
		_ = dec.Decode(&v)
		if drop(key) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		// The key as the client spelt it (its escapes included), then the
		// value's own bytes.
		out = append(out, a.raw[lastKeyStart(a.raw[:keyEnd]):keyEnd]...)
		out = append(out, ':')
		out = append(out, v...)
		obj[key] = a.obj[key]
	}
	return &Args{raw: append(out, '}'), obj: obj}, removed
}

// lastKeyStart is where the JSON string that ends b begins: the quote
// that opens it.
func lastKeyStart(b []byte) int {
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] != '"' {
			continue
		}
		// A quote escaped by an odd run of backslashes is inside the string.
		n := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
	}
	return 0
}
