package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"key order", `{"b":1,"a":2,"c":3}`, `{"a":2,"b":1,"c":3}`},
		{"whitespace", " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\":{ } } ", `{"a":[1,2],"b":{}}`},
		{"nested objects sorted", `{"b":{"d":1,"c":[{"y":1,"x":2}]},"a":null}`, `{"a":null,"b":{"c":[{"x":2,"y":1}],"d":1}}`},
		{"arrays keep order", `[3,1,[2,{"b":0,"a":0}]]`, `[3,1,[2,{"a":0,"b":0}]]`},
		{"duplicate key: last wins", `{"a":1,"a":2}`, `{"a":2}`},
		{"literals", `[true,false,null]`, `[true,false,null]`},
		{"empty object", `{}`, `{}`},
		{"top-level string", `"x"`, `"x"`},

		{"integer", `42`, `42`},
		{"negative integer", `-5`, `-5`},
		{"minus zero", `-0`, `0`},
		{"minus zero float", `-0.0`, `0`},
		{"big integer kept exact", `12345678901234567890`, `12345678901234567890`},
		{"integral float", `1.0`, `1`},
		{"exponent integral", `1e3`, `1000`},
		{"upper-case exponent", `1.5E-10`, `1.5e-10`},
		{"fraction", `0.1`, `0.1`},
		{"shifted fraction", `123.456e1`, `1234.56`},
		{"shortest round trip", `333333333.33333329`, `333333333.3333333`},
		{"plain up to 1e21", `1e20`, `100000000000000000000`},
		{"exponent from 1e21", `1e21`, `1e+21`},
		{"big exponent", `1e+23`, `1e+23`},
		{"small plain", `0.000001`, `0.000001`},
		{"small exponent", `1e-7`, `1e-7`},
		{"max float", `1.7976931348623157e308`, `1.7976931348623157e+308`},
		{"min subnormal", `5e-324`, `5e-324`},
		{"float beyond 2^53 rounds", `9007199254740993.0`, `9007199254740992`},
		{"out of float range kept verbatim", `1e400`, `1e400`},

		{"escaped non-ASCII becomes UTF-8", `"caf\u00e9"`, `"café"`},
		{"surrogate pair becomes UTF-8", `"\ud83d\ude00"`, `"😀"`},
		{"raw UTF-8 kept", `"日本"`, `"日本"`},
		{"control characters", `"\u0001\u001f\b\f\n\r\t"`, `"\u0001\u001f\b\f\n\r\t"`},
		{"quote and backslash", `"\"\\"`, `"\"\\"`},
		{"solidus unescaped", `"a\/b"`, `"a/b"`},
		{"HTML characters not escaped", `"<a&b>"`, `"<a&b>"`},
		{"DEL and line separator raw", `"\u007f\u2028"`, "\"\x7f\u2028\""},
		{"keys sorted by code point", `{"é":1,"z":2,"A":3,"a":4}`, `{"A":3,"a":4,"z":2,"é":1}`},
		{"escaped and raw keys agree", `{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize(json.RawMessage(tt.in))
			if err != nil {
				t.Fatalf("Canonicalize(%s): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonicalize(%s) = %s, want %s", tt.in, got, tt.want)
			}
			again, err := Canonicalize(got)
			if err != nil || string(again) != string(got) {
				t.Errorf("not idempotent: %s -> %s (%v)", got, again, err)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", ``, "EOF"},
		{"syntax", `{"a":}`, "invalid character"},
		{"trailing data", `{"a":1} {}`, "data after"},
		{"invalid UTF-8", "\"\xff\"", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Canonicalize(json.RawMessage(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Canonicalize(%q) error = %v, want one containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestArgsDigest(t *testing.T) {
	sha := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	tests := []struct {
		name     string
		in       string
		wantKeys []string
		wantOf   string // the canonical JSON the digest is of
	}{
		{"object", `{"table":"users","cascade":true,"where":{"id":1.0}}`, []string{"cascade", "table", "where"}, `{"cascade":true,"table":"users","where":{"id":1}}`},
		{"absent arguments digest as an empty object", ``, []string{}, `{}`},
		{"whitespace only", " \n", []string{}, `{}`},
		{"empty object", `{}`, []string{}, `{}`},
		{"not an object has no keys", `[1,2]`, nil, `[1,2]`},
		{"null", `null`, nil, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, got, err := ArgsDigest(json.RawMessage(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keys, tt.wantKeys) || (keys == nil) != (tt.wantKeys == nil) {
				t.Errorf("keys = %#v, want %#v", keys, tt.wantKeys)
			}
			if want := sha(tt.wantOf); got != want {
				t.Errorf("sha = %s, want sha256(%s) = %s", got, tt.wantOf, want)
			}
		})
	}

	t.Run("encodings of the same arguments agree", func(t *testing.T) {
		_, a, err1 := ArgsDigest(json.RawMessage(`{"b":[1,2],"a":"\u00e9"}`))
		_, b, err2 := ArgsDigest(json.RawMessage("{ \"a\": \"é\", \"b\": [1.0, 2e0] }"))
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("digests differ: %s (%v) vs %s (%v)", a, err1, b, err2)
		}
	})
	t.Run("different values differ", func(t *testing.T) {
		_, a, _ := ArgsDigest(json.RawMessage(`{"amount":100}`))
		_, b, _ := ArgsDigest(json.RawMessage(`{"amount":1000}`))
		if a == b {
			t.Error("different arguments share a digest")
		}
	})
	t.Run("invalid JSON is an error", func(t *testing.T) {
		if _, _, err := ArgsDigest(json.RawMessage(`{"a"`)); err == nil {
			t.Error("no error for invalid JSON")
		}
	})
}

func BenchmarkArgsDigest(b *testing.B) {
	raw := json.RawMessage(`{"table":"users","where":{"id":12345,"tenant":"contoso"},"cascade":true,"columns":["a","b","c"],"limit":1.5e2}`)
	for b.Loop() {
		if _, _, err := ArgsDigest(raw); err != nil {
			b.Fatal(err)
		}
	}
}
