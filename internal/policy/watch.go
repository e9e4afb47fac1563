package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce lets an editor finish a save (write, rename, chmod)
// before the file is read, so one save means one reload.
const reloadDebounce = 100 * time.Millisecond

// Watch reloads the policy file at path whenever it changes, until ctx is
// done; loaded is the policy the caller has already read from it. It watches
// the file's directory, so editors that save by writing a new file and
// renaming it over the old one are seen too. Once watching has started it
// reads the file once, so a change made between the caller's own Load and
// the start of Watch is not missed.
//
// A valid file that differs from the policy in force is passed to onChange
// (called from Watch's goroutine, one at a time); the caller swaps it in for
// new calls and says so. Its warnings are logged. An invalid or missing file
// is logged, every problem on its own line, and the last good policy stays.
// Content identical to the last accepted or rejected file, including
// loaded's, causes no reload and no log.
func Watch(ctx context.Context, path string, loaded *Policy, log *slog.Logger, onChange func(*Policy)) error {
	return watch(ctx, path, loaded, log, onChange, reloadDebounce)
}

func watch(ctx context.Context, path string, loaded *Policy, log *slog.Logger, onChange func(*Policy), debounce time.Duration) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch policy directory: %w", err)
	}
	r := reloader{path: path, log: log, onChange: onChange, good: loaded.digest}
	r.reload()
	var due <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch policy: watcher closed")
			}
			if filepath.Clean(ev.Name) == abs {
				due = time.After(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch policy: watcher closed")
			}
			log.Warn("policy watch error", "path", path, "err", err)
		case <-due:
			due = nil
			r.reload()
		}
	}
}

type reloader struct {
	path     string
	log      *slog.Logger
	onChange func(*Policy)
	// Digests of the content last accepted and last rejected, so that
	// events that leave the content as it was (chmod, touch, saving the
	// same text) neither reload nor log again. The zero digest is no
	// file's.
	good, bad [sha256.Size]byte
}

func (r *reloader) reload() {
	data, err := os.ReadFile(r.path)
	if err != nil {
		// Between an editor's remove and create the file may be gone;
		// the create brings another reload.
		r.log.Error("policy reload: cannot read the file; keeping the last good policy", "path", r.path, "err", err)
		return
	}
	sum := sha256.Sum256(data)
	if sum == r.good || sum == r.bad {
		return
	}
	p, problems, err := Parse(r.path, data)
	if err != nil {
		r.bad = sum
		for _, pr := range problems {
			if pr.Severity == SeverityError {
				r.log.Error("policy reload rejected; keeping the last good policy", "problem", pr.String())
			}
		}
		return
	}
	r.good, r.bad = sum, [sha256.Size]byte{}
	for _, pr := range problems {
		r.log.Warn("policy warning", "problem", pr.String())
	}
	r.onChange(p)
}
