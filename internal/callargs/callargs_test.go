package callargs

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseRefusesAmbiguousArguments(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"array", `[1]`, "must be a JSON object, got an array"},
		{"string", `"x"`, "got a string"},
		{"number", `12`, "got a number"},
		{"duplicate key", `{"a":1,"a":1}`, `key "a" twice`},
		{"duplicate key deep", `{"a":[{"b":{"c":1,"c":2}}]}`, `key "a[0].b.c" twice`},
		{"duplicate key after escaping", `{"path":1,"p\u0061th":2}`, `key "path" twice`},
		{"case-folded keys", `{"path":1,"PATH":2}`, `keys "path" and "PATH"`},
		{"case-folded keys deep", `{"o":{"Path":1,"pAth":2}}`, "differ only in case"},
		{"long s folds to s", `{"s":1,"ſ":2}`, "differ only in case"},
		{"invalid UTF-8 in a value", "{\"a\":\"\xc3\x28\"}", "not valid UTF-8"},
		{"invalid UTF-8 in a key", "{\"\xff\":1}", "not valid UTF-8"},
		{"lone high surrogate", `{"a":"\ud83d"}`, `lone UTF-16 surrogate (\ud83d)`},
		{"high surrogate then text", `{"a":"\ud83dx"}`, "lone UTF-16 surrogate"},
		{"lone low surrogate", `{"\ude00":1}`, `lone UTF-16 surrogate (\ude00)`},
		{"two highs", `{"a":"\ud83d\ud83d"}`, "lone UTF-16 surrogate"},
		{"trailing data", `{"a":1}x`, "after the JSON object"},
		{"second value", `{"a":1}{"a":2}`, "after the JSON object"},
		{"truncated", `{"a":`, "end too soon"},
		{"syntax", `{"a" 1}`, "not valid JSON"},
		{"too deep", `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, "nest deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(json.RawMessage(tt.raw))
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) || a != nil {
				t.Fatalf("Parse(%q) = %v, %v; want an *Error containing %q", tt.raw, a, err, tt.want)
			}
		})
	}
}

func TestParseAcceptsUnambiguousArguments(t *testing.T) {
	tests := []struct {
		name, raw string
		want      map[string]any
	}{
		{"none", ``, map[string]any{}},
		{"null", ` null `, map[string]any{}},
		{"empty", `{}`, map[string]any{}},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, map[string]any{"a": "😀"}},
		{"escaped backslash then u", `{"a":"\\ud800"}`, map[string]any{"a": `\ud800`}},
		{"same key in sibling objects", `{"x":{"k":1},"y":{"k":2}}`, map[string]any{"x": map[string]any{"k": json.Number("1")}, "y": map[string]any{"k": json.Number("2")}}},
		{"numbers keep their literal", `{"n":12345678901234567890,"f":1.50}`, map[string]any{"n": json.Number("12345678901234567890"), "f": json.Number("1.50")}},
		{"nesting at the limit", `{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(json.RawMessage(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !reflect.DeepEqual(a.Object(), tt.want) {
				t.Fatalf("Object() = %#v, want %#v", a.Object(), tt.want)
			}
			if string(a.Raw()) != tt.raw {
				t.Fatalf("Raw() = %q, want the input %q", a.Raw(), tt.raw)
			}
		})
	}
}

func TestFoldAgreesWithEqualFold(t *testing.T) {
	pairs := [][2]string{{"path", "PATH"}, {"k", "\u212a"}, {"s", "ſ"}, {"straße", "STRASSE"}, {"a", "b"}, {"σ", "ς"}}
	for _, p := range pairs {
		if got, want := Fold(p[0]) == Fold(p[1]), strings.EqualFold(p[0], p[1]); got != want {
			t.Errorf("Fold(%q) == Fold(%q) is %v, EqualFold says %v", p[0], p[1], got, want)
		}
	}
}

// FuzzParse: whatever Parse accepts, encoding/json reads the same way, and
// no object in it has two keys a case-insensitive binder could confuse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,"x",null,true]}}`, `{"a":1,"A":2}`, `{"a":"\ud800"}`, "{\"\xff\":1}", `[]`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := Parse(raw)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var std map[string]any
		if err := dec.Decode(&std); err != nil {
			t.Fatalf("Parse accepted %q, encoding/json refuses it: %v", raw, err)
		}
		if !reflect.DeepEqual(std, a.Object()) {
			t.Fatalf("Parse(%q) = %#v, encoding/json reads %#v", raw, a.Object(), std)
		}
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				seen := map[string]bool{}
				for k, e := range x {
					if seen[Fold(k)] {
						t.Fatalf("Parse accepted %q with keys equal under folding", raw)
					}
					seen[Fold(k)] = true
					walk(e)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(a.Object())
	})
}

// BenchmarkParse is the strict reading's cost for typical arguments.
func BenchmarkParse(b *testing.B) {
	raw := json.RawMessage(`{"table":"customers","limit":10,"where":{"region":"emea","ids":[1,2,3]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func TestWithout(t *testing.T) {
	tests := []struct {
		name, raw string
		drop      []string
		want      string
		removed   []string
	}{
		{"none there", `{"a": 1}`, []string{"justification"}, `{"a": 1}`, nil},
		{"middle", `{"a": 1.50, "justification": "x", "b": [1, {"c": "\u00e9"}]}`, []string{"justification", "ticket"}, `{"a":1.50,"b":[1, {"c": "\u00e9"}]}`, []string{"justification"}},
		{"both, any case", `{"Justification":"x","TICKET":"7","q":"a\"b"}`, []string{"justification", "ticket"}, `{"q":"a\"b"}`, []string{"Justification", "TICKET"}},
		{"escaped key", `{"k\"ey\\": 12345678901234567890, "ticket": null}`, []string{"ticket"}, `{"k\"ey\\":12345678901234567890}`, []string{"ticket"}},
		{"only member", ` { "ticket" : "7" } `, []string{"ticket"}, `{}`, []string{"ticket"}},
		{"nested stays", `{"o":{"ticket":"7"}}`, []string{"ticket"}, `{"o":{"ticket":"7"}}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(json.RawMessage(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			got, removed := a.Without(tc.drop...)
			slices.Sort(removed)
			slices.Sort(tc.removed)
			if string(got.Raw()) != tc.want || !slices.Equal(removed, tc.removed) {
				t.Fatalf("Without = %s, %q; want %s, %q", got.Raw(), removed, tc.want, tc.removed)
			}
			// What remains reads as the same arguments less those removed.
			again, err := Parse(got.Raw())
			if err != nil {
				t.Fatalf("result does not parse: %v", err)
			}
			if !reflect.DeepEqual(again.Object(), got.Object()) {
				t.Fatalf("Object = %v, parsed %v", got.Object(), again.Object())
			}
			for _, k := range tc.removed {
				if _, ok := got.Object()[k]; ok {
					t.Fatalf("%s still in Object", k)
				}
			}
		})
	}
}
