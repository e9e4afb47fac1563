package audit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fullRecord sets every field of a Record, found by reflection, so that a
// field added to Record and forgotten in appendRecord fails the tests.
func fullRecord(t testing.TB, s string) Record {
	t.Helper()
	var r Record
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Interface().(type) {
			case time.Time:
				f.Set(reflect.ValueOf(t0))
			case json.RawMessage:
				f.Set(reflect.ValueOf(json.RawMessage("{ \"k\" :\n [1, " + strings.TrimSpace(mustJSON(t, s)) + "] }")))
			case []string:
				f.Set(reflect.ValueOf([]string{s, "b"}))
			case string:
				f.SetString(s + v.Type().Field(i).Name)
			case int64:
				f.SetInt(int64(i) * 1001)
			case Client:
				fill(f)
			default:
				t.Fatalf("field %s of type %s: teach fullRecord and appendRecord about it", v.Type().Field(i).Name, f.Type())
			}
		}
	}
	fill(reflect.ValueOf(&r).Elem())
	return r
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	strs := []string{
		"plain", "", "quote\" backslash\\ slash/", "\x00\x01\b\f\n\r\t\x1f\x7f", "<a href='x'>&amp;</a>",
		"café 日本 😀", "line\u2028para\u2029", "bad \xff\xfe utf8 \xed\xa0\x80 surrogate", "\xe2\x82",
	}
	for _, s := range strs {
		full := fullRecord(t, s)
		sparse := Record{Time: t0.In(time.FixedZone("x", 3600)), Tool: s, Decision: s, Outcome: s, Prev: s}
		nameOnly := sparse
		nameOnly.Client = Client{Version: s + "v"}
		for _, r := range []Record{full, sparse, nameOnly, {}} {
			want, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendRecord(nil, &r)
			if err != nil || string(got) != string(want) {
				t.Errorf("appendRecord(%q):\n got %s (%v)\nwant %s", s, got, err, want)
			}
		}
	}
}

func TestAppendRecordRejectsWhatEncodingJSONRejects(t *testing.T) {
	for _, r := range []Record{
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Time: t0, Args: json.RawMessage(`{"a":`)},
	} {
		if _, err := json.Marshal(r); err == nil {
			t.Fatalf("encoding/json accepts %+v", r)
		}
		if _, err := appendRecord(nil, &r); err == nil {
			t.Errorf("appendRecord accepted %+v", r)
		}
	}
}

func FuzzAppendRecord(f *testing.F) {
	for _, s := range []string{"x", "\x00\"\\<\u2028\xff", "😀"} {
		f.Add(s, s, []byte(`{"a":1}`))
	}
	f.Fuzz(func(t *testing.T, s, tool string, args []byte) {
		r := Record{Time: t0, TraceID: s, Client: Client{Name: s}, Tool: tool, Decision: s, Outcome: tool, Message: s, ArgKeys: []string{s, tool}, Args: args, Prev: s}
		want, werr := json.Marshal(r)
		got, gerr := appendRecord(nil, &r)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("errors differ: appendRecord %v, encoding/json %v", gerr, werr)
		}
		if werr == nil && string(got) != string(want) {
			t.Fatalf("appendRecord:\n got %s\nwant %s", got, want)
		}
	})
}
