package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// LineError says which line of a log breaks the chain and how.
type LineError struct {
	Line    int // 1-based
	Problem string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Problem) }

// Verify reads a log and checks that every line is a complete record whose
// Prev is the SHA-256 of the line before it (64 zeros for the first). It
// returns the number of good lines before the first broken one, and for a
// broken one a *LineError. The chain shows any change to a line but the last,
// and any removal or reordering except cutting lines off the end; for those,
// see VerifyCheckpoint.
func Verify(r io.Reader) (lines int, err error) {
	lines, _, err = verify(r, -1)
	return lines, err
}

// CheckpointError says how a log whose chain is intact disagrees with its
// checkpoint.
type CheckpointError struct{ Problem string }

func (e *CheckpointError) Error() string { return e.Problem }

// VerifyCheckpoint is Verify, and then checks that the log still holds the
// records its checkpoint counts, the last of them the line it names: that
// shows records cut from the end, and a last record changed, which the chain
// alone cannot. Lines after the checkpoint's are fine (a writer appending
// while the log is read, or one that stopped between the two writes); read
// the checkpoint before the log, so that a live log is never behind it.
// A disagreement is a *CheckpointError.
func VerifyCheckpoint(r io.Reader, cp Checkpoint) (lines int, err error) {
	lines, at, err := verify(r, cp.Records)
	if err != nil {
		return lines, err
	}
	switch n := int64(lines); {
	case n < cp.Records:
		return lines, &CheckpointError{fmt.Sprintf(
			"%d records cut from the end: the checkpoint says %d records ending in hash %s, the log has %d",
			cp.Records-n, cp.Records, cp.Last, n)}
	case at.hash != cp.Last || at.size != cp.Size:
		return lines, &CheckpointError{fmt.Sprintf(
			"record %d is not the one the checkpoint names (it says %d records, %d bytes, ending in hash %s; the log's record %d ends at byte %d with hash %s): the log was changed or replaced",
			cp.Records, cp.Records, cp.Size, cp.Last, cp.Records, at.size, at.hash)}
	}
	return lines, nil
}

// chainPoint is where the chain stands after some line.
type chainPoint struct {
	hash string // of the line; zeroHash before the first
	size int64  // bytes through the line's newline
}

// verify checks the chain and returns where it stood after line mark.
func verify(r io.Reader, mark int64) (lines int, at chainPoint, err error) {
	br := bufio.NewReader(r)
	cur := chainPoint{hash: zeroHash}
	if mark == 0 {
		at = cur
	}
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		switch {
		case len(line) == 0 && errors.Is(err, io.EOF):
			return n - 1, at, nil
		case errors.Is(err, io.EOF):
			return n - 1, at, &LineError{n, "incomplete line (no newline): the file was cut short"}
		case err != nil:
			return n - 1, at, fmt.Errorf("audit: reading line %d: %w", n, err)
		}
		body := line[:len(line)-1]
		rec, err := parseLine(body)
		if err != nil {
			return n - 1, at, &LineError{n, err.Error()}
		}
		if rec.Prev != cur.hash {
			return n - 1, at, &LineError{n, mismatch(n, rec.Prev, cur.hash)}
		}
		cur = chainPoint{hash: hashLine(body), size: cur.size + int64(len(line))}
		if int64(n) == mark {
			at = cur
		}
	}
}

func mismatch(n int, got, want string) string {
	if n == 1 {
		return fmt.Sprintf("hash mismatch: prev is %.12s…, but the first line must have 64 zeros: lines were removed from the start", got)
	}
	return fmt.Sprintf("hash mismatch: prev is %.12s… but line %d hashes to %.12s…: line %d was changed, or lines were removed or reordered here",
		got, n-1, want, n-1)
}

// parseLine reads one line (without its newline) as a record fit for the log.
func parseLine(body []byte) (Record, error) {
	var r Record
	if !json.Valid(body) {
		return r, errors.New("not JSON")
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("not a record: %w", err)
	}
	if err := r.check(); err != nil {
		return r, err
	}
	return r, nil
}
