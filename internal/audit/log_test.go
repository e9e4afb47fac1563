package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

var t0 = time.Date(2026, 11, 23, 17, 0, 0, 123456789, time.UTC)

func record(i int) Record {
	return Record{
		TraceID:    fmt.Sprintf("trace-%d", i),
		Principal:  "6f1c2a3b-0000-4000-8000-000000000001",
		Client:     Client{Name: "claude-ai", Version: "0.1.0"},
		Tool:       fmt.Sprintf("db__tool_%d", i),
		Upstream:   "db",
		Rule:       "policies.yaml:12",
		Decision:   DecisionActivate,
		Role:       "Database Administrator",
		RequestID:  "8f3e",
		Outcome:    OutcomeForwarded,
		WaitMS:     47000,
		UpstreamMS: 12,
		ArgKeys:    []string{"table"},
		ArgsSHA256: strings.Repeat("ab", 32),
	}
}

func openLog(t testing.TB, path string, opts ...Option) *Log {
	t.Helper()
	l, err := Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func writeN(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Write(context.Background(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("file does not end in a newline: %q", data)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	return lines[:len(lines)-1] // SplitAfter leaves an empty element after the last newline
}

func hashOf(line []byte) string {
	sum := sha256.Sum256(bytes.TrimSuffix(line, []byte("\n")))
	return hex.EncodeToString(sum[:])
}

func verifyFile(t testing.TB, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := Verify(f)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return n
}

func TestWriteChainsLinesAndStampsTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	fake := clock.NewFake(t0)
	l := openLog(t, path, WithClock(fake))
	writeN(t, l, 0, 2)
	fake.Advance(time.Second)
	elsewhere := time.FixedZone("CET", 3600)
	r := record(2)
	r.Time = time.Date(2026, 1, 2, 4, 4, 5, 0, elsewhere)
	if err := l.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}

	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	wantPrev := []string{zeroHash, hashOf(lines[0]), hashOf(lines[1])}
	wantTime := []string{"2026-11-23T17:00:00.123456789Z", "2026-11-23T17:00:00.123456789Z", "2026-01-02T03:04:05Z"}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if got["prev"] != wantPrev[i] {
			t.Errorf("line %d: prev = %v, want %s", i+1, got["prev"], wantPrev[i])
		}
		if got["time"] != wantTime[i] {
			t.Errorf("line %d: time = %v, want %s", i+1, got["time"], wantTime[i])
		}
		if got["tool"] != fmt.Sprintf("db__tool_%d", i) {
			t.Errorf("line %d: tool = %v", i+1, got["tool"])
		}
	}
	if n := verifyFile(t, path); n != 3 {
		t.Errorf("Verify = %d lines, want 3", n)
	}
}

func TestArgumentValuesOnlyWhenGiven(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	raw := json.RawMessage(`{"card": "4111-1111", "amount": 5}`)
	keys, sha, err := ArgsDigest(raw)
	if err != nil {
		t.Fatal(err)
	}
	redacted := Record{Tool: "pay", Decision: DecisionAllow, Outcome: OutcomeForwarded, ArgKeys: keys, ArgsSHA256: sha}
	clear := redacted
	clear.Args = raw
	for _, r := range []Record{redacted, clear} {
		if err := l.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	lines := readLines(t, path)
	if bytes.Contains(lines[0], []byte("4111")) || bytes.Contains(lines[0], []byte(`"args"`)) {
		t.Errorf("redacted record holds values: %s", lines[0])
	}
	if !bytes.Contains(lines[0], []byte(`"argKeys":["amount","card"]`)) || !bytes.Contains(lines[0], []byte(sha)) {
		t.Errorf("redacted record lacks names or digest: %s", lines[0])
	}
	if !bytes.Contains(lines[1], []byte(`"args":{"card":"4111-1111","amount":5}`)) {
		t.Errorf("clear record lacks its arguments: %s", lines[1])
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "mcp-gate")
	path := filepath.Join(dir, "audit.jsonl")
	openLog(t, path)
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}

func TestChainContinuesAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 0, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	writeN(t, openLog(t, path), 2, 2)

	lines := readLines(t, path)
	var third Record
	if err := json.Unmarshal(lines[2], &third); err != nil {
		t.Fatal(err)
	}
	if third.Prev != hashOf(lines[1]) {
		t.Errorf("after reopen prev = %s, want hash of line 2 %s", third.Prev, hashOf(lines[1]))
	}
	if n := verifyFile(t, path); n != 4 {
		t.Errorf("Verify = %d lines, want 4", n)
	}
}

func TestOpenRefusesBrokenLastLine(t *testing.T) {
	tests := []struct {
		name, tail, want string
	}{
		{"torn line", `{"time":"2026-11-23T17:00:00Z","tool":"x","deci`, "incomplete"},
		{"not JSON", "garbage\n", "not a valid record"},
		{"blank line", "\n", "not a valid record"},
		{"missing fields", `{"time":"2026-11-23T17:00:00Z","tool":"x"}` + "\n", "missing field decision, outcome, prev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l := openLog(t, path)
			writeN(t, l, 0, 2)
			l.Close()
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tt.tail)
			f.Close()
			openRefuses(t, path, tt.want)
		})
	}
}

func TestOpenReadsLongLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	writeN(t, l, 0, 1)
	r := record(1)
	r.Message = strings.Repeat("long ", 3000) // spans several read chunks
	if err := l.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	l.Close()
	writeN(t, openLog(t, path), 2, 1)
	if n := verifyFile(t, path); n != 3 {
		t.Errorf("Verify = %d lines, want 3", n)
	}
}

func TestWriteRejectsIncompleteRecord(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Record)
		want   string
	}{
		{"no tool", func(r *Record) { r.Tool = "" }, "missing field tool"},
		{"no decision", func(r *Record) { r.Decision = "" }, "missing field decision"},
		{"no outcome", func(r *Record) { r.Outcome = "" }, "missing field outcome"},
		{"unknown decision", func(r *Record) { r.Decision = "maybe" }, "unknown decision"},
		{"bad digest", func(r *Record) { r.ArgsSHA256 = "xyz" }, "argsSha256"},
		{"args not JSON", func(r *Record) { r.Args = json.RawMessage(`{`) }, "args"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l := openLog(t, path)
			r := record(0)
			tt.change(&r)
			err := l.Write(context.Background(), r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write error = %v, want one containing %q", err, tt.want)
			}
			if data, _ := os.ReadFile(path); len(data) != 0 {
				t.Errorf("rejected record was written: %s", data)
			}
			writeN(t, l, 1, 1) // the log stays usable
		})
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	const goroutines, each = 50, 20
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() { writeN(t, l, g*each, each) })
	}
	wg.Wait()

	if n := verifyFile(t, path); n != goroutines*each {
		t.Errorf("Verify = %d lines, want %d", n, goroutines*each)
	}
	seen := map[string]bool{}
	for _, line := range readLines(t, path) {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		seen[r.TraceID] = true
	}
	if len(seen) != goroutines*each {
		t.Errorf("%d distinct records, want %d", len(seen), goroutines*each)
	}
}

// Records written while another is being written are committed together
// (group commit), yet no Write returns before its own record is in the
// file: the writers queued behind a commit all wait, then all find their
// record there, in one chain.
func TestWritesQueuedBehindACommitAreWrittenTogether(t *testing.T) {
	const writers = 8
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	l.committing <- struct{}{} // a commit in progress, as far as the writers can tell
	errs := make(chan error, writers)
	for i := range writers {
		go func() { errs <- l.Write(context.Background(), record(i)) }()
	}
	// Wait on the queue itself: every writer's line is pending.
	for queued := 0; queued < writers; {
		l.mu.Lock()
		if l.pending != nil {
			queued = len(l.pending.ends)
		}
		l.mu.Unlock()
		runtime.Gosched()
	}
	select {
	case err := <-errs:
		t.Fatalf("a Write returned (%v) before its record was written", err)
	default:
	}
	if lines := readLines(t, path); len(lines) != 0 {
		t.Fatalf("%d lines in the file while the commit is held, want 0", len(lines))
	}

	<-l.committing
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := verifyFile(t, path); n != writers {
		t.Errorf("Verify = %d lines, want %d", n, writers)
	}
	if cp, err := ReadCheckpoint(CheckpointPath(path)); err != nil || cp.Records != writers {
		t.Errorf("checkpoint %+v, %v; want %d records", cp, err, writers)
	}
}

// Close writes what is queued: the writers waiting on it are answered, and
// their records are in the log.
func TestCloseWritesWhatIsQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	l.committing <- struct{}{}
	errs := make(chan error, 1)
	go func() { errs <- l.Write(context.Background(), record(0)) }()
	for queued := false; !queued; runtime.Gosched() {
		l.mu.Lock()
		queued = l.pending != nil
		l.mu.Unlock()
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	for closing := false; !closing; runtime.Gosched() {
		l.mu.Lock()
		closing = l.closed
		l.mu.Unlock()
	}
	<-l.committing
	if err := <-errs; err != nil {
		t.Fatalf("the queued Write: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := verifyFile(t, path); n != 1 {
		t.Errorf("Verify = %d lines, want 1", n)
	}
}

// Two Logs on one file stand for two gate processes sharing an audit path.
func TestLogsSharingAFileKeepOneChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, b := openLog(t, path), openLog(t, path)
	var wg sync.WaitGroup
	for i, l := range []*Log{a, b, a, b} {
		wg.Go(func() { writeN(t, l, i*25, 25) })
	}
	wg.Wait()
	if n := verifyFile(t, path); n != 100 {
		t.Errorf("Verify = %d lines, want 100", n)
	}
}

// A log kept busy keeps the file lock between its batches, and still lets
// it go at least every lockHold: another process appending to the same
// file gets its turns while the first never pauses, and the chain is one.
func TestBusyLogSharesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	busy, other := openLog(t, path), openLog(t, path)
	stop := make(chan struct{})
	wrote := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				wrote <- n
				return
			default:
			}
			if err := busy.Write(context.Background(), record(1000+n)); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	writeN(t, other, 0, 50)
	close(stop)
	n := <-wrote
	if got := verifyFile(t, path); got != 50+n {
		t.Errorf("Verify = %d lines, want %d", got, 50+n)
	}
	wantHead(t, path, 50+n)
}

func TestWriteAfterClose(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "audit.jsonl"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(context.Background(), record(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := l.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"page-cache", nil}, {"fsync-each", []Option{WithSyncEachWrite()}}} {
		b.Run(bc.name, func(b *testing.B) {
			l := openLog(b, filepath.Join(b.TempDir(), "audit.jsonl"), bc.opts...)
			r := record(0)
			ctx := context.Background()
			for b.Loop() {
				if err := l.Write(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Eight writers on two cores, as eight concurrent calls: their records
	// share commits.
	b.Run("parallel", func(b *testing.B) {
		l := openLog(b, filepath.Join(b.TempDir(), "audit.jsonl"))
		r := record(0)
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Write(context.Background(), r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func readCP(t testing.TB, path string) Checkpoint {
	t.Helper()
	cp, err := ReadCheckpoint(CheckpointPath(path))
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// wantHead checks that the checkpoint names the file's real chain head.
func wantHead(t testing.TB, path string, records int) {
	t.Helper()
	lines := readLines(t, path)
	want := Checkpoint{Records: int64(len(lines)), Last: zeroHash}
	for _, l := range lines {
		want.Size += int64(len(l))
	}
	if len(lines) > 0 {
		want.Last = hashOf(lines[len(lines)-1])
	}
	if got := readCP(t, path); got != want || len(lines) != records {
		t.Errorf("checkpoint = %+v for %d lines, want %+v for %d", got, len(lines), want, records)
	}
}

func TestCheckpointFollowsEveryWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	wantHead(t, path, 0)
	for i := range 3 {
		writeN(t, l, i, 1)
		wantHead(t, path, i+1)
	}
	st, err := os.Stat(CheckpointPath(path))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != checkpointSize || st.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint is %d bytes, mode %v; want %d, 0600", st.Size(), st.Mode().Perm(), checkpointSize)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, path) // resumes from the checkpoint
	writeN(t, l, 3, 2)
	wantHead(t, path, 5)
	if n := verifyFile(t, path); n != 5 {
		t.Errorf("Verify = %d lines, want 5", n)
	}
}

func TestOpenCountsALogWithoutCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	long := record(1)
	long.Message = strings.Repeat("x", 100<<10) // lines across span's chunks
	writeN(t, l, 0, 1)
	if err := l.Write(context.Background(), long); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 2, 1)
	l.Close()
	if err := os.Remove(CheckpointPath(path)); err != nil { // as a log from before checkpoints
		t.Fatal(err)
	}
	writeN(t, openLog(t, path), 3, 1)
	wantHead(t, path, 4)
}

// Two Logs on one file stand for two gate processes: each catches up with
// the other's lines, so the checkpoint counts them all.
func TestSharedLogKeepsOneCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, b := openLog(t, path), openLog(t, path)
	writeN(t, a, 0, 2)
	writeN(t, b, 2, 3)
	wantHead(t, path, 5)
	writeN(t, a, 5, 1)
	wantHead(t, path, 6)
}

func TestWriteRefusesALogChangedUnderIt(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		want   string
	}{
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "was deleted or renamed under mcp-gate"},
		{"renamed", func(t *testing.T, path string) {
			if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
		}, "was deleted or renamed under mcp-gate"},
		{"replaced", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			if err := os.WriteFile(path+".new", data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}, "was replaced or renamed under mcp-gate"},
		{"truncated to nothing", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "was truncated under mcp-gate"},
		{"last line cut", func(t *testing.T, path string) {
			lines := readLines(t, path)
			if err := os.WriteFile(path, bytes.Join(lines[:1], nil), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "was truncated under mcp-gate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l := openLog(t, path)
			writeN(t, l, 0, 2)
			if err := l.Err(); err != nil {
				t.Fatalf("Err of a working log = %v", err)
			}
			tt.change(t, path)
			before, _ := os.ReadFile(path)
			for range 2 { // and it stays refused
				err := l.Write(context.Background(), record(2))
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "restarted") {
					t.Errorf("Write: error = %v, want one naming %s, saying %q and how to recover", err, path, tt.want)
				}
			}
			if err := l.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Err = %v, want the failure", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("a refused record reached the file at the path")
			}
		})
	}
}

func TestOpenRefusesALogItsCheckpointContradicts(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		want   string
	}{
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "is missing, but its checkpoint"},
		{"records cut from the end", func(t *testing.T, path string) {
			lines := readLines(t, path)
			if err := os.WriteFile(path, bytes.Join(lines[:1], nil), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "records were cut from the end"},
		{"emptied", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "records were cut from the end"},
		{"rewritten", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			if err := os.WriteFile(path, bytes.Replace(data, []byte("db__tool_2"), []byte("db__tool_X"), 1), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "the log was rewritten or replaced"},
		{"checkpoint garbled", func(t *testing.T, path string) {
			if err := os.WriteFile(CheckpointPath(path), []byte(`{"records":-1}`), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a checkpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l := openLog(t, path)
			writeN(t, l, 0, 3)
			l.Close()
			tt.change(t, path)
			openRefuses(t, path, tt.want)
		})
	}
}

func TestOpenStartsANewLogOnceBothAreMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	writeN(t, l, 0, 2)
	l.Close()
	for _, p := range []string{path, CheckpointPath(path)} {
		if err := os.Rename(p, p+".old"); err != nil {
			t.Fatal(err)
		}
	}
	writeN(t, openLog(t, path), 0, 1)
	wantHead(t, path, 1)
}

func TestLastLine(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct{ name, data, want string }{
		{"empty", "", ""},
		{"one line", "a\n", "a\n"},
		{"two lines", "a\nbc\n", "bc\n"},
		{"no newline at the end", "a\nbc", "bc"},
		{"only newlines", "\n\n", "\n"},
		{"first line is the last", long(5000) + "\n", long(5000) + "\n"},
		{"a chunk exactly", "a\n" + long(4095) + "\n", long(4095) + "\n"},
		{"a chunk and one", "a\n" + long(4096) + "\n", long(4096) + "\n"},
		{"several chunks", "a\n" + long(9000) + "\n", long(9000) + "\n"},
		{"newline at a chunk boundary", long(4095) + "\n" + long(4096) + "\n", long(4096) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := lastLine(f, int64(len(tt.data)))
			if err != nil || string(got) != tt.want {
				t.Errorf("lastLine = %d bytes %.20q (%v), want %d bytes %.20q", len(got), got, err, len(tt.want), tt.want)
			}
			// span agrees on the last line, and counts the newlines.
			n, last, err := span(f, 0, int64(len(tt.data)))
			if err != nil || string(last) != tt.want || n != int64(strings.Count(tt.data, "\n")) {
				t.Errorf("span = %d lines, %.20q (%v)", n, last, err)
			}
		})
	}
}

// openRefuses checks that Open refuses the log at path with an error that
// names the file and says want, and leaves the file as it was.
func openRefuses(t *testing.T, path, want string) {
	t.Helper()
	before, _ := os.ReadFile(path)
	l, err := Open(path)
	if err == nil {
		l.Close()
		t.Fatal("Open accepted it")
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open error %q should name the file and say %q", err, want)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("Open changed the file it refused")
	}
}
