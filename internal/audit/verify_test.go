package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
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

func TestVerifyCheckpoint(t *testing.T) {
	lines := fiveLines(t)
	var size int64
	for _, l := range lines {
		size += int64(len(l))
	}
	head := Checkpoint{Records: 5, Size: size, Last: hashOf(lines[4])}
	tests := []struct {
		name      string
		lines     [][]byte
		cp        Checkpoint
		wantLines int
		wantErr   string // "": agrees
	}{
		{"agrees", lines, head, 5, ""},
		{"lines after the checkpoint", lines, Checkpoint{Records: 3, Size: size - int64(len(lines[3])+len(lines[4])), Last: hashOf(lines[2])}, 5, ""},
		{"empty checkpoint", lines, Checkpoint{Last: zeroHash}, 5, ""},
		{"empty log and checkpoint", nil, Checkpoint{Last: zeroHash}, 0, ""},
		{"one record cut", lines[:4], head, 4, "1 records cut from the end: the checkpoint says 5 records ending in hash " + head.Last + ", the log has 4"},
		{"all records cut", nil, head, 0, "5 records cut from the end"},
		{"last record changed", append(slices.Clone(lines[:4]), bytes.Replace(lines[4], []byte("tool_4"), []byte("tool_X"), 1)), head, 5,
			"record 5 is not the one the checkpoint names"},
		{"size disagrees", lines, Checkpoint{Records: 5, Size: size + 1, Last: head.Last}, 5, "record 5 is not the one the checkpoint names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := VerifyCheckpoint(bytes.NewReader(bytes.Join(tt.lines, nil)), tt.cp)
			if n != tt.wantLines {
				t.Errorf("lines = %d, want %d", n, tt.wantLines)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("VerifyCheckpoint: %v, want agreement", err)
				}
				return
			}
			var ce *CheckpointError
			if !errors.As(err, &ce) || !strings.Contains(ce.Problem, tt.wantErr) {
				t.Errorf("VerifyCheckpoint = %v, want a *CheckpointError with %q", err, tt.wantErr)
			}
		})
	}
	t.Run("a broken chain is reported as such", func(t *testing.T) {
		broken := slices.Clone(lines)
		broken[1] = []byte("hello\n")
		var le *LineError
		if _, err := VerifyCheckpoint(bytes.NewReader(bytes.Join(broken, nil)), head); !errors.As(err, &le) || le.Line != 2 {
			t.Errorf("VerifyCheckpoint = %v, want line 2 broken", err)
		}
	})
}

func TestReadCheckpoint(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct{ name, data, want string }{
		{"good", string(Checkpoint{Records: 2, Size: 300, Last: h}.encode()), ""},
		{"empty log", string(Checkpoint{Last: zeroHash}.encode()), ""},
		{"empty file", "", "EOF"},
		{"not JSON", "hello", "invalid character"},
		{"unknown field", `{"records":1,"size":2,"last":"` + h + `","x":1}`, "unknown field"},
		{"negative", `{"records":-1,"size":2,"last":"` + h + `"}`, "negative"},
		{"bad hash", `{"records":1,"size":2,"last":"xyz"}`, "hex SHA-256"},
		{"records without bytes", `{"records":1,"size":0,"last":"` + h + `"}`, "disagree"},
		{"no records, a hash", `{"records":0,"size":0,"last":"` + h + `"}`, "disagree"},
		{"fewer bytes than records", `{"records":5,"size":2,"last":"` + h + `"}`, "fewer bytes"},
		{"too long", strings.Repeat(" ", checkpointSize+1), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl.head")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadCheckpoint(path)
			if tt.want == "" {
				if err != nil {
					t.Errorf("ReadCheckpoint: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadCheckpoint error = %v, want one naming the file with %q", err, tt.want)
			}
		})
	}
}

func TestCheckpointEncodingIsFixedLength(t *testing.T) {
	for _, cp := range []Checkpoint{{Last: zeroHash}, {Records: math.MaxInt64, Size: math.MaxInt64, Last: strings.Repeat("f", 64)}} {
		b := cp.encode()
		if len(b) != checkpointSize || b[len(b)-1] != '\n' {
			t.Errorf("encode(%+v) = %d bytes %q, want %d ending in a newline", cp, len(b), b, checkpointSize)
		}
		got, err := readCheckpoint(bytes.NewReader(b), "x")
		if err != nil || got != cp {
			t.Errorf("round trip of %+v = %+v, %v", cp, got, err)
		}
	}
}
