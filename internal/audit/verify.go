package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
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
// and any removal or reordering except cutting lines off the end; anchoring
// the last line's hash elsewhere would be needed to catch those.
func Verify(r io.Reader) (lines int, err error) {
	br := bufio.NewReader(r)
	prev := zeroHash
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		switch {
		case len(line) == 0 && errors.Is(err, io.EOF):
			return n - 1, nil
		case errors.Is(err, io.EOF):
			return n - 1, &LineError{n, "incomplete line (no newline): the file was cut short"}
		case err != nil:
			return n - 1, fmt.Errorf("audit: reading line %d: %w", n, err)
		}
		body := line[:len(line)-1]
		rec, err := parseLine(body)
		if err != nil {
			return n - 1, &LineError{n, err.Error()}
		}
		if rec.Prev != prev {
			return n - 1, &LineError{n, mismatch(n, rec.Prev, prev)}
		}
		sum := sha256.Sum256(body)
		prev = hex.EncodeToString(sum[:])
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
