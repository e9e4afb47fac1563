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

// Log appends records to a hash-chained JSON-lines file. It is safe for
// concurrent use, and several processes may append to one file (on Unix,
// where an advisory lock orders their writes and the chain follows the
// file's real last line).
type Log struct {
	clock    Clock
	syncEach bool

	mu   sync.Mutex
	f    *os.File // nil once closed
	prev string   // hex SHA-256 of the file's last line
	end  int64    // file size after the line prev was computed from
	err  error    // sticky: the file may end in a torn line
}

// Open opens or creates the log at path (its directory 0700, the file 0600)
// and continues the chain from the file's last line. It refuses a file whose
// last line is torn or not a record, rather than fork the chain; it does not
// re-check the whole chain (that is Verify's job and costs a full read).
func Open(path string, opts ...Option) (*Log, error) {
	l := &Log{clock: realClock{}}
	for _, o := range opts {
		o(l)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	unlock, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: lock %s: %w", path, err)
	}
	l.end = -1
	err = l.readTail(f)
	unlock()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	l.f = f
	return l, nil
}

// Write stamps r with the clock's time if it has none, links it to the
// previous line and appends it as one line in a single write. The record is
// written even if ctx is cancelled: a cancelled call is exactly one an
// auditor wants to see. An error means the record is not in the log.
func (l *Log) Write(_ context.Context, r Record) error {
	if r.Time.IsZero() {
		r.Time = l.clock.Now()
	}
	r.Time = r.Time.UTC()
	// Marshal outside the lock with a placeholder Prev; Prev is the last
	// field and fixed-length, so the real hash is patched in under the lock.
	r.Prev = zeroHash
	if err := r.check(); err != nil {
		return fmt.Errorf("audit: record not written: %w", err)
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit: record not written: %w", err)
	}
	prevAt := len(line) - len(zeroHash) - len(`"}`)
	line = append(line, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return ErrClosed
	}
	if l.err != nil {
		return l.err
	}
	unlock, err := lockFile(l.f)
	if err != nil {
		return fmt.Errorf("audit: lock: %w", err)
	}
	defer unlock()
	if err := l.readTail(l.f); err != nil {
		l.err = fmt.Errorf("audit: %w", err)
		return l.err
	}
	copy(line[prevAt:], l.prev)
	n, err := l.f.Write(line)
	if err == nil && l.syncEach {
		err = l.f.Sync()
	}
	if err != nil {
		// The line may be half-written or unsynced; nothing more may be
		// chained onto it.
		l.err = fmt.Errorf("audit: write failed, log unusable until reopened: %w", err)
		return l.err
	}
	sum := sha256.Sum256(line[:n-1])
	l.prev = hex.EncodeToString(sum[:])
	l.end += int64(n)
	return nil
}

// Err reports why the log can take no more records: ErrClosed after Close,
// or the failure that made it unusable. It is nil while the log works.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return ErrClosed
	}
	return l.err
}

// Close syncs and closes the file. Later Writes return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	serr := f.Sync()
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("audit: %w", serr)
	}
	return nil
}

// readTail brings prev up to date with the file's last line when the file is
// not the size this Log last saw (at Open, or after another process
// appended). The caller holds the file lock.
func (l *Log) readTail(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	switch {
	case size == l.end:
		return nil
	case size < l.end:
		return fmt.Errorf("log shrank from %d to %d bytes while open: it was truncated", l.end, size)
	case size == 0:
		l.prev, l.end = zeroHash, 0
		return nil
	}
	line, err := lastLine(f, size)
	if err != nil {
		return err
	}
	body, ok := bytes.CutSuffix(line, []byte("\n"))
	if !ok {
		return errors.New(`last line is incomplete (no newline), probably cut short by a crash; check the file with "mcp-gate audit verify" and move it aside`)
	}
	if _, err := parseLine(body); err != nil {
		return fmt.Errorf("last line is not a valid record (%v); check the file with \"mcp-gate audit verify\" and move it aside", err)
	}
	sum := sha256.Sum256(body)
	l.prev, l.end = hex.EncodeToString(sum[:]), size
	return nil
}

// lastLine returns the file's last line with its newline, if it has one.
func lastLine(f *os.File, size int64) ([]byte, error) {
	const chunk = 4096
	var tail []byte
	for off := size; off > 0; {
		n := min(chunk, off)
		off -= n
		buf := make([]byte, n, int(n)+len(tail))
		if _, err := f.ReadAt(buf, off); err != nil {
			return nil, err
		}
		tail = append(buf, tail...)
		if i := bytes.LastIndexByte(tail[:len(tail)-1], '\n'); i >= 0 {
			return tail[i+1:], nil
		}
	}
	return tail, nil
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
