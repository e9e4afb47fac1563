package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecord appends r as one line of JSON, with the field names, order
// and omissions encoding/json gives Record, but without reflection: every
// call writes records, and this is a few microseconds less per record.
// TestAppendRecordMatchesEncodingJSON keeps the two in step, field by field.
func appendRecord(b []byte, r *Record) ([]byte, error) {
	if y := r.Time.Year(); y < 0 || y > 9999 {
		return nil, errors.New("time: year outside of range [0,9999]")
	}
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "traceId", r.TraceID, true)
	b = appendField(b, "principal", r.Principal, true)
	if r.Client != (Client{}) {
		b = append(b, `,"client":{`...)
		mark := len(b)
		b = appendField(b, "name", r.Client.Name, true)
		b = appendField(b, "version", r.Client.Version, true)
		if len(b) > mark { // drop the comma before the first field
			b = append(b[:mark], b[mark+1:]...)
		}
		b = append(b, '}')
	}
	b = appendField(b, "tool", r.Tool, false)
	b = appendField(b, "upstream", r.Upstream, true)
	b = appendField(b, "rule", r.Rule, true)
	b = appendField(b, "decision", r.Decision, false)
	b = appendField(b, "reason", r.Reason, true)
	b = appendField(b, "role", r.Role, true)
	b = appendField(b, "kind", r.Kind, true)
	b = appendField(b, "scope", r.Scope, true)
	b = appendField(b, "access", r.Access, true)
	b = appendField(b, "roleDefinitionId", r.RoleDefinitionID, true)
	b = appendField(b, "requestId", r.RequestID, true)
	b = appendField(b, "outcome", r.Outcome, false)
	b = appendField(b, "message", r.Message, true)
	b = append(b, `,"waitMs":`...)
	b = strconv.AppendInt(b, r.WaitMS, 10)
	b = append(b, `,"upstreamMs":`...)
	b = strconv.AppendInt(b, r.UpstreamMS, 10)
	b = appendStrings(b, "argKeys", r.ArgKeys)
	b = appendField(b, "argsSha256", r.ArgsSHA256, true)
	if len(r.Args) > 0 {
		// Compacted and HTML-escaped, as encoding/json does: a newline in
		// the arguments would split the record's line, and a verifier that
		// re-encodes must get the same bytes.
		var c, e bytes.Buffer
		if err := json.Compact(&c, r.Args); err != nil {
			return nil, err
		}
		json.HTMLEscape(&e, c.Bytes())
		b = append(b, `,"args":`...)
		b = append(b, e.Bytes()...)
	}
	b = appendStrings(b, "elicited", r.Elicited)
	b = appendField(b, "prev", r.Prev, false)
	return append(b, '}'), nil
}

// appendStrings appends ,"name":["a","b"], or nothing for an empty list.
func appendStrings(b []byte, name string, values []string) []byte {
	if len(values) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '[')
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendField appends ,"name":"value", or nothing for an empty value that
// is omitted.
func appendField(b []byte, name, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendString appends s as a JSON string, escaping as encoding/json does:
// quote, backslash and control characters; <, > and & (so a record is safe
// to embed in HTML); U+2028 and U+2029; and each invalid UTF-8 byte as
// U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
