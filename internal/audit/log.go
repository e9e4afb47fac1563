package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit: log is closed")

// Clock is the time source for records written without a time.
type Clock interface{ Now() time.Time }

// Option configures Open.
type Option func(*Log)

// WithClock sets the clock that stamps records (the default is the system
// clock).
func WithClock(c Clock) Option { return func(l *Log) { l.clock = c } }

// WithSyncEachWrite makes every Write wait for fsync, so a record survives a
// power loss or kernel crash, not only a crash of mcp-gate.
//
// It is off by default because every decision, allow included, is audited
// on the call path: a per-record fsync costs milliseconds on real disks and
// serialises all calls behind it. Without it each record still reaches the
// kernel in a single write before Write returns (so it survives the process
// dying), the file is fsynced on Close, and a line torn by a system crash is
// refused at the next Open rather than silently chained over.
func WithSyncEachWrite() Option { return func(l *Log) { l.syncEach = true } }

// Log appends records to a hash-chained JSON-lines file and keeps its
// checkpoint (CheckpointPath) current. It is safe for concurrent use, and
// several processes may append to one file (on Unix, where an advisory lock
// orders their writes and the chain follows the file's real last line).
//
// Records written at the same time are committed together (group commit):
// one goroutine takes the records waiting at that moment and writes them
// as one batch, in one write, under the file lock, with one check of the
// file and one checkpoint, while the others wait for it; each Write still
// returns only once its own record is in the file. A busy log keeps the
// file lock from one batch to the next for a few milliseconds (lease.go).
// The chain head is kept in memory, so nothing is read back unless another
// process appended.
//
// Before each batch it checks that the file it has open is still the one
// at its path and no shorter than it left it (one stat), so a
// log deleted, renamed, replaced or truncated under it is noticed at the
// next record. That failure is sticky: the Log takes no more records, and
// the gate none of its calls, until it is reopened.
type Log struct {
	clock    Clock
	syncEach bool
	path     string

	// committing is held by the one goroutine writing a batch: it owns
	// the fields below it until it lets go.
	committing chan struct{}
	f          *os.File    // nil once closed
	head       *os.File    // the checkpoint, overwritten in place
	id         os.FileInfo // f's identity, to tell it from another file at path
	prev       string      // hex SHA-256 of the file's last line
	end        int64       // file size after the line prev was computed from
	records    int64       // lines in the file up to end
	unlock     func()      // lets the file lock go; nil when not held (see lease.go)
	lockedAt   time.Time   // when the file lock was taken
	lastBatch  time.Time   // when the last batch was written under it
	idle       *time.Timer // lets the file lock go after lockIdle without a batch
	shut       chan struct{}

	mu      sync.Mutex
	pending *batch // records waiting for the next commit; nil when none
	closed  bool
	err     error // sticky: the file may end in a torn line, or is not the log any more
}

// batch is records committed together. Each line has a placeholder prev
// (the last field, of fixed length) that the commit patches.
type batch struct {
	lines []byte // the lines, each with its newline
	ends  []int  // where each line ends in lines, after its newline
	done  chan struct{}
	err   error // why the batch is not in the log; set before done closes
}

// Open opens or creates the log at path (its directory 0700, the file and
// its checkpoint 0600) and continues the chain from the file's last line. It
// refuses a file whose last line is torn or not a record, rather than fork
// the chain, and a file that its checkpoint shows was cut short, replaced
// or deleted. It does not re-check the whole chain (that is Verify's job
// and costs a full read); it reads the whole file only when there is no
// checkpoint yet, to count its records.
func Open(path string, opts ...Option) (*Log, error) {
	l := &Log{clock: realClock{}, path: path, committing: make(chan struct{}, 1), shut: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := l.openFile()
	if err != nil {
		return nil, err
	}
	unlock, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: lock %s: %w", path, err)
	}
	err = l.start(f)
	unlock() // before closing f: its descriptor may be reused at once
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// start finds the chain head of f and opens and writes its checkpoint. The
// caller holds the file lock.
func (l *Log) start(f *os.File) error {
	if err := l.resume(f); err != nil {
		return fmt.Errorf("audit: %s: %w", l.path, err)
	}
	head, err := os.OpenFile(CheckpointPath(l.path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: checkpoint: %w", err)
	}
	l.f, l.head = f, head
	if err = l.checkpoint(); err == nil {
		err = head.Truncate(checkpointSize) // in case it held something longer
	}
	if err != nil {
		head.Close()
		l.f, l.head = nil, nil
		return fmt.Errorf("audit: checkpoint: %w", err)
	}
	return nil
}

// openFile opens the log, creating it unless its checkpoint says it held
// records: then it was deleted or moved, and a new empty log would hide it.
func (l *Log) openFile() (*os.File, error) {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0)
	if !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		return f, nil
	}
	head := CheckpointPath(l.path)
	if cp, err := ReadCheckpoint(head); err == nil && cp.Records > 0 {
		return nil, fmt.Errorf("audit: %s is missing, but its checkpoint %s says it held %d records: it was deleted or moved. Put it back, or move the checkpoint aside to start a new log", l.path, head, cp.Records)
	}
	f, err = os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return f, nil
}

// resume finds where the chain of f stands: from the checkpoint when there
// is one (after checking that the file still holds the line it names), else
// from the start. The caller holds the file lock.
func (l *Log) resume(f *os.File) error {
	head := CheckpointPath(l.path)
	l.prev, l.end, l.records = zeroHash, 0, 0
	st, err := f.Stat()
	if err != nil {
		return err
	}
	l.id = st
	cp, err := ReadCheckpoint(head)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return l.catchUp(f, st.Size()) // a log from before checkpoints, or a new one
	case err != nil:
		return fmt.Errorf("%w; check the log with \"mcp-gate audit verify\" and move the checkpoint aside", err)
	case st.Size() < cp.Size:
		return fmt.Errorf("the log is %d bytes but its checkpoint %s says %d records in %d bytes: records were cut from the end. "+
			"Check it with \"mcp-gate audit verify\"; to start a new log, move the log and its checkpoint aside", st.Size(), head, cp.Records, cp.Size)
	case cp.Size > 0:
		line, err := lastLine(f, cp.Size)
		if err != nil {
			return err
		}
		if hashLine(bytes.TrimSuffix(line, []byte("\n"))) != cp.Last {
			return fmt.Errorf("the log does not hold the line its checkpoint %s ends in (record %d, hash %.12s…): the log was rewritten or replaced. "+
				"Check it with \"mcp-gate audit verify\"; to start a new log, move the log and its checkpoint aside", head, cp.Records, cp.Last)
		}
	}
	l.prev, l.end, l.records = cp.Last, cp.Size, cp.Records
	return l.catchUp(f, st.Size())
}

// Write stamps r with the clock's time if it has none, links it to the
// previous line and appends it as one line, then updates the checkpoint;
// records written at the same time share the write (see Log). It returns
// once r is in the file. The record is written even if ctx is cancelled:
// a cancelled call is exactly one an auditor wants to see. An error means
// the record is not in the log.
func (l *Log) Write(_ context.Context, r Record) error {
	if r.Time.IsZero() {
		r.Time = l.clock.Now()
	}
	r.Time = r.Time.UTC()
	// Encoded outside any lock with a placeholder Prev; Prev is the last
	// field and fixed-length, so the real hash is patched in at commit.
	r.Prev = zeroHash
	if err := r.check(); err != nil {
		return fmt.Errorf("audit: record not written: %w", err)
	}
	line, err := appendRecord(make([]byte, 0, 512), &r)
	if err != nil {
		return fmt.Errorf("audit: record not written: %w", err)
	}
	if len(line) >= maxLine {
		return fmt.Errorf("audit: record not written: %d bytes, more than a record may take", len(line))
	}

	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return ErrClosed
	case l.err != nil:
		l.mu.Unlock()
		return l.err
	}
	b := l.pending
	if b == nil {
		b = &batch{done: make(chan struct{})}
		l.pending = b
	}
	b.lines = append(append(b.lines, line...), '\n')
	b.ends = append(b.ends, len(b.lines))
	l.mu.Unlock()
	return l.await(b)
}

// await returns once b is committed, committing it itself unless another
// goroutine is already writing: then b waits for that write to end, and
// one of b's writers commits b with whatever joined it meanwhile.
func (l *Log) await(b *batch) error {
	select {
	case <-b.done:
		return b.err
	case l.committing <- struct{}{}:
	}
	defer func() { <-l.committing }()
	select {
	case <-b.done: // committed by the writer before us
		return b.err
	default:
	}
	// Only a committer takes a batch, and it is done before the next one
	// starts: b, not yet done, is still the pending one.
	l.mu.Lock()
	l.pending = nil
	l.mu.Unlock()
	l.commit(b)
	return b.err
}

// commit writes b and closes its done. The caller holds committing.
func (l *Log) commit(b *batch) {
	defer close(b.done)
	l.mu.Lock()
	b.err = l.err // Close commits what is pending after closing: not ErrClosed
	l.mu.Unlock()
	if b.err != nil {
		return
	}
	if err := l.lock(); err != nil {
		b.err = fmt.Errorf("audit: lock: %w", err)
		return
	}
	ok := false
	defer func() { l.afterBatch(ok) }()
	if err := l.stillTheLog(); err != nil {
		b.err = l.fail(fmt.Errorf("audit: %w", err))
		return
	}
	prev, start := l.prev, 0
	for _, end := range b.ends {
		line := b.lines[start : end-1]
		copy(line[len(line)-len(zeroHash)-len(`"}`):], prev)
		prev, start = hashLine(line), end
	}
	_, err := l.f.Write(b.lines)
	if err == nil && l.syncEach {
		err = l.f.Sync()
	}
	if err != nil {
		// The lines may be half-written or unsynced; nothing more may be
		// chained onto them.
		b.err = l.fail(fmt.Errorf("audit: write failed, log unusable until reopened: %w", err))
		return
	}
	l.prev = prev
	l.end += int64(len(b.lines))
	l.records += int64(len(b.ends))
	if err := l.checkpoint(); err != nil {
		// The records are in the log, but from here on a cut at the end
		// would not show: take no more.
		l.fail(fmt.Errorf("audit: checkpoint %s not written, log unusable until reopened: %w", CheckpointPath(l.path), err))
		return
	}
	ok = true
}

// fail makes err the reason the log takes no more records, and returns it.
func (l *Log) fail(err error) error {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	return err
}

// stillTheLog checks that the open file is still the one at the log's path
// and has not shrunk, and catches up with lines another process appended.
// The caller holds the file lock. Cost: one stat of the path, whose result
// is also the open file's size when it is the same file.
func (l *Log) stillTheLog() error {
	const restart = "no call goes through until mcp-gate is restarted"
	st, err := os.Stat(l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the audit log %s was deleted or renamed under mcp-gate; %s (put the file back first, or move %s aside to start a new log)",
			l.path, restart, CheckpointPath(l.path))
	case err != nil:
		return fmt.Errorf("the audit log %s cannot be checked: %w", l.path, err)
	case !os.SameFile(l.id, st):
		return fmt.Errorf("the audit log %s was replaced or renamed under mcp-gate (its path names another file now); %s (put the file back first, or move both it and %s aside to start a new log)",
			l.path, restart, CheckpointPath(l.path))
	case st.Size() < l.end:
		return fmt.Errorf("the audit log %s was truncated under mcp-gate (from %d to %d bytes); %s (restore the file first, or move both it and %s aside to start a new log)",
			l.path, l.end, st.Size(), restart, CheckpointPath(l.path))
	}
	return l.catchUp(l.f, st.Size())
}

// checkpoint overwrites the checkpoint with the chain head, in one write.
func (l *Log) checkpoint() error {
	_, err := l.head.WriteAt(Checkpoint{Records: l.records, Size: l.end, Last: l.prev}.encode(), 0)
	return err
}

// Err reports why the log can take no more records: ErrClosed after Close,
// or the failure that made it unusable. It is nil while the log works.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.err
}

// Close waits for the records being written, then syncs and closes the
// file and its checkpoint. Later Writes return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	b := l.pending
	l.mu.Unlock()
	if b != nil {
		_ = l.await(b) // its writers learn how it went
	}
	l.committing <- struct{}{} // and no commit runs from here on
	close(l.shut)
	if l.idle != nil {
		l.idle.Stop()
	}
	l.release() // before closing the file: its descriptor may be reused at once
	var errs []error
	for _, f := range []*os.File{l.f, l.head} {
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.f, l.head = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// catchUp brings the chain head up to date with the lines between end and
// size: those another process appended, or all of them at Open. The caller
// holds the file lock.
func (l *Log) catchUp(f *os.File, size int64) error {
	if size == l.end {
		return nil
	}
	lines, last, err := span(f, l.end, size)
	if err != nil {
		return err
	}
	if !bytes.HasSuffix(last, []byte("\n")) {
		return errors.New(`last line is incomplete (no newline), probably cut short by a crash; check the file with "mcp-gate audit verify" and move it aside`)
	}
	body := last[:len(last)-1]
	if _, err := parseLine(body); err != nil {
		return fmt.Errorf("last line is not a valid record (%v); check the file with \"mcp-gate audit verify\" and move it aside", err)
	}
	l.prev, l.end, l.records = hashLine(body), size, l.records+lines
	return nil
}

// span counts the newlines in f's bytes [from, to) and returns the last
// line there, with its newline if it has one.
func span(f *os.File, from, to int64) (lines int64, last []byte, err error) {
	buf := make([]byte, min(64<<10, to-from))
	lastStart := from
	for off := from; off < to; {
		chunk := buf[:min(int64(len(buf)), to-off)]
		if _, err := f.ReadAt(chunk, off); err != nil {
			return 0, nil, err
		}
		lines += int64(bytes.Count(chunk, []byte("\n")))
		starts := chunk // a newline that is not the last byte starts a line
		if off+int64(len(chunk)) == to {
			starts = chunk[:len(chunk)-1]
		}
		if i := bytes.LastIndexByte(starts, '\n'); i >= 0 {
			lastStart = off + int64(i) + 1
		}
		off += int64(len(chunk))
	}
	if to-lastStart > maxLine {
		return 0, nil, fmt.Errorf("last line is %d bytes, longer than any record; check the file with \"mcp-gate audit verify\" and move it aside", to-lastStart)
	}
	last = make([]byte, to-lastStart)
	if _, err := f.ReadAt(last, lastStart); err != nil {
		return 0, nil, err
	}
	return lines, last, nil
}

// maxLine bounds the line Open and Write read back: far above any record
// (the proxy bounds a message at 16 MiB by default), far below what would
// exhaust memory on a file that was filled with garbage.
const maxLine = 64 << 20

// lastLine returns the line ending at size, with its newline if it has one.
// It searches backwards for the newline before it, then reads the line once.
func lastLine(f *os.File, size int64) ([]byte, error) {
	const chunk = 4096
	buf := make([]byte, chunk)
	var start int64
	// The byte at size-1 is the line's own newline, if any: search before it.
	for end := size - 1; end > 0; {
		off := max(end-chunk, 0)
		if _, err := f.ReadAt(buf[:end-off], off); err != nil {
			return nil, err
		}
		if i := bytes.LastIndexByte(buf[:end-off], '\n'); i >= 0 {
			start = off + int64(i) + 1
			break
		}
		if size-off > maxLine {
			return nil, fmt.Errorf("the line ending at byte %d is longer than any record", size)
		}
		end = off
	}
	line := make([]byte, size-start)
	if _, err := f.ReadAt(line, start); err != nil {
		return nil, err
	}
	return line, nil
}

// hashLine is a line's link in the chain: the hex SHA-256 of the line
// without its newline.
func hashLine(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
