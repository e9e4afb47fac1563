package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// CheckpointPath is where the checkpoint of the log at path is kept.
func CheckpointPath(path string) string { return path + ".head" }

// Checkpoint is a log's chain head as its writer last left it: how many
// records the log holds, its size, and the hash of its last line. The chain
// itself cannot show records cut from the end (nothing chains onto the last
// line); a checkpoint kept beside the log can. It proves nothing against
// someone who can write both files: they can rewrite both alike.
type Checkpoint struct {
	Records int64  `json:"records"`
	Size    int64  `json:"size"` // bytes, through the last line's newline
	Last    string `json:"last"` // hex SHA-256 of the last line; 64 zeros for none
}

// checkpointSize is the fixed length of a checkpoint file: the writer
// overwrites it in place with one write, well under a disk sector, so a
// crash leaves the old checkpoint or the new one, never half of each.
const checkpointSize = 160

// encode returns the checkpoint as a JSON line padded with spaces to
// checkpointSize bytes.
func (c Checkpoint) encode() []byte {
	b := make([]byte, 0, checkpointSize)
	b = append(b, `{"records":`...)
	b = strconv.AppendInt(b, c.Records, 10)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, c.Size, 10)
	b = append(b, `,"last":"`...)
	b = append(b, c.Last...)
	b = append(b, `"}`...)
	for len(b) < checkpointSize-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

// check reports what makes c inconsistent in itself.
func (c Checkpoint) check() error {
	switch {
	case c.Records < 0 || c.Size < 0:
		return errors.New("negative count")
	case !isHexHash(c.Last):
		return errors.New("last is not a hex SHA-256")
	case (c.Records == 0) != (c.Size == 0) || (c.Records == 0) != (c.Last == zeroHash):
		return errors.New("records, size and last disagree")
	case c.Size < c.Records:
		return errors.New("fewer bytes than records")
	}
	return nil
}

// ReadCheckpoint reads the checkpoint at path (see CheckpointPath). A
// missing file is reported as an error satisfying errors.Is(err,
// fs.ErrNotExist).
func ReadCheckpoint(path string) (Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return Checkpoint{}, err
	}
	defer f.Close()
	return readCheckpoint(f, path)
}

func readCheckpoint(r io.Reader, path string) (Checkpoint, error) {
	var c Checkpoint
	data, err := io.ReadAll(io.LimitReader(r, checkpointSize+1))
	if err != nil {
		return c, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if len(data) > checkpointSize {
		err = errors.New("longer than a checkpoint")
	} else if err = dec.Decode(&c); err == nil {
		err = c.check()
	}
	if err != nil {
		return c, fmt.Errorf("checkpoint %s is not a checkpoint (%v)", path, err)
	}
	return c, nil
}
