package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

// fiveLines returns a good five-line log, one line per element.
func fiveLines(t *testing.T) [][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path, WithClock(clock.NewFake(t0)))
	writeN(t, l, 0, 5)
	return readLines(t, path)
}

func TestVerify(t *testing.T) {
	dropField := func(line []byte, field string) []byte {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, field)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return append(out, '\n')
	}
	tests := []struct {
		name      string
		tamper    func(lines [][]byte) [][]byte
		wantLines int    // good lines before the break
		wantLine  int    // 0: the chain is intact
		wantErr   string // in the problem
	}{
		{"intact", func(l [][]byte) [][]byte { return l }, 5, 0, ""},
		{"empty file", func([][]byte) [][]byte { return nil }, 0, 0, ""},
		{"field changed in the middle line", func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte("db__tool_2"), []byte("db__tool_X"), 1)
			return l
		}, 3, 4, "hash mismatch: prev is"},
		{"line deleted", func(l [][]byte) [][]byte { return slices.Delete(l, 2, 3) }, 2, 3, "line 2 was changed, or lines were removed or reordered"},
		{"first line deleted", func(l [][]byte) [][]byte { return l[1:] }, 0, 1, "removed from the start"},
		{"lines reordered", func(l [][]byte) [][]byte { l[1], l[2] = l[2], l[1]; return l }, 1, 2, "hash mismatch"},
		{"prev rewritten", func(l [][]byte) [][]byte {
			at := bytes.Index(l[2], []byte(`"prev":"`)) + len(`"prev":"`)
			copy(l[2][at:], strings.Repeat("f", 64))
			return l
		}, 2, 3, "hash mismatch"},
		{"last line truncated", func(l [][]byte) [][]byte { l[4] = l[4][:len(l[4])/2]; return l }, 4, 5, "incomplete line"},
		{"last line cut off is not detectable", func(l [][]byte) [][]byte { return l[:4] }, 4, 0, ""},
		{"garbage line", func(l [][]byte) [][]byte { l[2] = []byte("hello\n"); return l }, 2, 3, "not JSON"},
		{"blank line inserted", func(l [][]byte) [][]byte { return slices.Insert(l, 3, []byte("\n")) }, 3, 4, "not JSON"},
		{"JSON but not an object", func(l [][]byte) [][]byte { l[2] = []byte("[1]\n"); return l }, 2, 3, "not a record"},
		{"missing field", func(l [][]byte) [][]byte { l[2] = dropField(l[2], "outcome"); return l }, 2, 3, "missing field outcome"},
		{"missing prev", func(l [][]byte) [][]byte { l[2] = dropField(l[2], "prev"); return l }, 2, 3, "missing field prev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Join(tt.tamper(fiveLines(t)), nil)
			n, err := Verify(bytes.NewReader(data))
			if n != tt.wantLines {
				t.Errorf("lines = %d, want %d", n, tt.wantLines)
			}
			if tt.wantLine == 0 {
				if err != nil {
					t.Errorf("Verify: %v, want intact", err)
				}
				return
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("Verify error = %v, want a *LineError", err)
			}
			if le.Line != tt.wantLine || !strings.Contains(le.Problem, tt.wantErr) {
				t.Errorf("Verify = %v, want line %d: ...%s...", le, tt.wantLine, tt.wantErr)
			}
		})
	}
}
