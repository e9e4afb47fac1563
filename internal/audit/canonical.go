package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ArgsDigest returns the sorted top-level argument names of a tool call and
// the hex SHA-256 of the arguments' canonical JSON (see Canonicalize), which
// is what the audit log records instead of the values. Empty raw input means
// the client sent no arguments and digests like an empty object, since a
// tool sees the two alike. keys is nil when the arguments are not an object.
func ArgsDigest(raw json.RawMessage) (keys []string, sha string, err error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	v, err := decode(raw)
	if err != nil {
		return nil, "", err
	}
	keys, sha = DigestValue(v)
	return keys, sha, nil
}

// DigestValue is ArgsDigest for arguments decoded already (objects as
// map[string]any, arrays as []any, numbers as json.Number), so that a
// caller which parsed them once need not have them parsed again.
func DigestValue(v any) (keys []string, sha string) {
	if obj, ok := v.(map[string]any); ok {
		keys = make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
	}
	var b bytes.Buffer
	writeCanonical(&b, v)
	sum := sha256.Sum256(b.Bytes())
	return keys, hex.EncodeToString(sum[:])
}

// Canonicalize returns the canonical form of a JSON value, so that two
// encodings of the same arguments hash alike whatever the client's key
// order, spacing or escaping:
//   - object keys sorted by code point (UTF-8 byte order), recursively; for a
//     duplicated key the last value wins, as it does for the tool;
//   - no insignificant whitespace;
//   - strings as UTF-8, escaping only '"', '\\' and control characters;
//   - integers written without fraction or exponent keep every digit (ids
//     larger than 2^53 stay exact); other numbers are read as float64 and
//     written the way RFC 8785 (ECMAScript) does, so 1.0, 1e0 and 1 agree.
//
// Input that is not a single valid UTF-8 JSON value is an error.
func Canonicalize(raw json.RawMessage) ([]byte, error) {
	v, err := decode(raw)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	writeCanonical(&b, v)
	return b.Bytes(), nil
}

// decode parses exactly one JSON value, keeping numbers as their literals.
func decode(raw []byte) (any, error) {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD, making
	// distinct inputs share a digest.
	if !utf8.Valid(raw) {
		return nil, errors.New("arguments: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("arguments: data after the JSON value")
	}
	return v, nil
}

func writeCanonical(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		b.WriteString(canonicalNumber(string(v)))
	case string:
		writeString(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			writeCanonical(b, v[k])
		}
		b.WriteByte('}')
	}
}

// canonicalNumber rewrites a JSON number literal (already validated by the
// decoder) in canonical form.
func canonicalNumber(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		if lit == "-0" {
			return "0"
		}
		return lit // JSON forbids leading zeros, so the literal is canonical
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		// Out of float64 range: no canonical float exists, and the
		// literal itself is still a deterministic digest input.
		return lit
	}
	return formatES(f)
}

// formatES formats a finite float64 as ECMAScript's Number.prototype.toString
// does (RFC 8785 §3.2.2.3): shortest round-trip digits, plain notation for
// decimal exponents in [-6, 21), exponent notation outside.
func formatES(f float64) string {
	if f == 0 {
		return "0" // also -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// digits d1..dk and exponent n such that f = 0.d1..dk × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	n, k := x+1, len(digits)
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	out := sign + digits[:1]
	if k > 1 {
		out += "." + digits[1:]
	}
	if n-1 >= 0 {
		return out + "e+" + strconv.Itoa(n-1)
	}
	return out + "e" + strconv.Itoa(n-1)
}

func writeString(b *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		default:
			b.WriteByte(c) // UTF-8 passes through byte by byte
		}
	}
	b.WriteByte('"')
}
