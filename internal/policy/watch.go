package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// reloadDebounce lets an editor finish a save (write, rename, chmod)
// before the file is read, so one save means one reload.
const reloadDebounce = 100 * time.Millisecond

// maxLinks bounds the symbolic links followed from the policy path, as the
// kernel bounds them (ELOOP), so a link cycle ends the walk.
const maxLinks = 40

// Watch reloads the policy file at path whenever its content changes,
// until ctx is done; loaded is the policy the caller has already read from
// it.
//
// It watches the directory holding the file and, when path or a directory
// on the way to the file is a symbolic link, the directory holding each
// link, following the links again after every change. So it sees an editor
// that saves by writing a new file and renaming it over the old one, a file
// or a link's target written in place (once the writer closes it), a link
// pointed at another file, and a
// Kubernetes ConfigMap mount, where policies.yaml links to
// ..data/policies.yaml and the ..data link to a timestamped directory is
// replaced by a rename. Once watching has started it reads the file once,
// so a change made after the caller's Load is not missed.
//
// Content that differs from the last accepted or rejected content (by
// SHA-256) is parsed: a valid file is passed to onChange (called from
// Watch's goroutine, one at a time), which swaps it in for new calls and
// says so, and its warnings are logged; an invalid one is logged, every
// problem on its own line, and the last good policy stays. Events that
// leave the content as it was (touch, chmod, saving the same text, a swap
// to identical content, loaded's included) neither reload nor log.
func Watch(ctx context.Context, path string, loaded *Policy, log *slog.Logger, onChange func(*Policy)) error {
	w, err := newDirWatcher()
	if err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	defer w.Close()
	return watch(ctx, path, loaded, log, onChange, w, reloadDebounce)
}

func watch(ctx context.Context, path string, loaded *Policy, log *slog.Logger, onChange func(*Policy), w dirWatcher, debounce time.Duration) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	r := reloader{path: path, abs: abs, log: log, onChange: onChange, w: w, good: loaded.digest, dirs: map[string]bool{}}
	if err := r.follow(); err != nil {
		return fmt.Errorf("watch policy directory: %w", err)
	}
	// Stat after follow, which watches what the path is now: a missing
	// directory is a mistake in the path, not a swap under way.
	if _, err := os.Stat(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch policy directory: %w", err)
	}
	r.reload()
	var due <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case name, ok := <-w.Events():
			if !ok {
				return errors.New("watch policy: watcher closed")
			}
			if r.names[filepath.Clean(name)] {
				due = time.After(debounce)
			}
		case err, ok := <-w.Errors():
			if !ok {
				return errors.New("watch policy: watcher closed")
			}
			log.Warn("policy watch error", "path", path, "err", err)
		case <-due:
			due = nil
			if r.reload() {
				log.Debug("policy file touched, its content unchanged: nothing to reload", "path", path)
			}
		}
	}
}

type reloader struct {
	path     string // as given, for messages
	abs      string
	log      *slog.Logger
	onChange func(*Policy)
	w        dirWatcher

	// names are the directory entries whose change may change what path
	// reads (see chain); dirs the directories watched for them.
	names map[string]bool
	dirs  map[string]bool

	// Digests of the content last accepted and last rejected (the zero
	// digest is no file's), so that events that leave the content as it was
	// neither reload nor log again; readErr is the read error last logged,
	// for the same.
	good, bad [sha256.Size]byte
	readErr   string
}

// reload reads the file and acts on new content; it reports whether the
// content was the last accepted or rejected one.
func (r *reloader) reload() (same bool) {
	// Watch the links as they are now before reading through them, so a
	// change after the read is seen.
	if err := r.follow(); err != nil {
		r.log.Warn("policy watch: cannot watch a directory on the way to the file; a change there is not seen until another one is", "path", r.path, "err", err)
	}
	data, err := os.ReadFile(r.path)
	if err != nil {
		// Between an editor's remove and create the file may be gone;
		// the create brings another reload.
		if err.Error() != r.readErr {
			r.readErr = err.Error()
			r.log.Error("policy reload: cannot read the file; keeping the last good policy", "path", r.path, "err", err)
		}
		return false
	}
	r.readErr = ""
	sum := sha256.Sum256(data)
	if sum == r.good || sum == r.bad {
		return true
	}
	p, problems, err := Parse(r.path, data)
	if err != nil {
		r.bad = sum
		for _, pr := range problems {
			if pr.Severity == SeverityError {
				r.log.Error("policy reload rejected; keeping the last good policy", "problem", pr.String())
			}
		}
		return false
	}
	r.good, r.bad = sum, [sha256.Size]byte{}
	for _, pr := range problems {
		r.log.Warn("policy warning", "problem", pr.String())
	}
	r.onChange(p)
	return false
}

// maxFollows bounds how often follow walks the links anew because they
// changed while it was watching them.
const maxFollows = 10

// follow watches the directories holding the entries of path's chain, and
// stops watching those no longer on it. A directory that goes before it is
// watched (a ConfigMap's old timestamped directory, removed by the swap
// that replaced it) means the links changed meanwhile: it walks them anew,
// and the swap itself is an event in a directory already watched.
func (r *reloader) follow() error {
	var err error
	for range maxFollows {
		names, dirs := map[string]bool{}, map[string]bool{}
		for _, e := range chain(r.abs) {
			names[e] = true
			dirs[filepath.Dir(e)] = true
		}
		r.names = names
		if err = r.watchOnly(dirs); err == nil {
			return nil
		}
	}
	return err
}

// watchOnly makes dirs the directories watched.
func (r *reloader) watchOnly(dirs map[string]bool) error {
	for d := range dirs {
		if r.dirs[d] {
			continue
		}
		if err := r.w.Add(d); err != nil {
			return err
		}
		r.dirs[d] = true
	}
	for d := range r.dirs {
		if !dirs[d] {
			_ = r.w.Remove(d) // fails when the directory went, taking its watch
			delete(r.dirs, d)
		}
	}
	return nil
}

// chain follows the absolute path abs as the kernel resolves it and returns
// the directory entries that decide what it reads: every symbolic link on
// the way and the file itself (or the first entry that is missing), each
// under the real path of its directory, as the watcher names their events.
func chain(abs string) []string {
	vol := filepath.VolumeName(abs)
	dir, todo := vol+string(filepath.Separator), splitPath(abs[len(vol):])
	var entries []string
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case ".":
			continue
		case "..":
			dir = filepath.Dir(dir)
			continue
		}
		next := filepath.Join(dir, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return append(entries, next)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			dir = next
			if len(todo) == 0 {
				entries = append(entries, next)
			}
			continue
		}
		entries = append(entries, next)
		target, err := os.Readlink(next)
		if links++; err != nil || links > maxLinks {
			return entries
		}
		if filepath.IsAbs(target) {
			vol = filepath.VolumeName(target)
			dir, target = vol+string(filepath.Separator), target[len(vol):]
		}
		todo = append(splitPath(target), todo...)
	}
	return entries
}

func splitPath(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r < utf8.RuneSelf && os.IsPathSeparator(uint8(r)) })
}
