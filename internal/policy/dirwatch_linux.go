package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// inotifyMask is what can change what the policy path reads: an entry
// created, deleted or renamed, its mode changed, a file written and
// closed, a watched directory gone. Not IN_MODIFY: a file written in place
// is reloaded once it is closed, and the writes to a file kept open in the
// same directory wake nothing. That file is typically the audit log
// (~/.mcp-gate/ holds both by default), written on every call: with
// IN_MODIFY each of its writes woke the watcher, some 7% of the gate's CPU
// per call (docs/BENCHMARKS.md).
const inotifyMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// inotifyWatcher is the dirWatcher on Linux: inotify, with the mask above.
type inotifyWatcher struct {
	fd     int
	f      *os.File // fd, read through the runtime's poller, so Close ends a Read
	events chan string
	errors chan error
	done   chan struct{}

	mu   sync.Mutex
	dirs map[int32]string // by watch descriptor
	wds  map[string]int32
}

func newDirWatcher() (dirWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &inotifyWatcher{
		fd: fd, f: os.NewFile(uintptr(fd), "inotify"),
		events: make(chan string), errors: make(chan error), done: make(chan struct{}),
		dirs: map[int32]string{}, wds: map[string]int32{},
	}
	go w.read()
	return w, nil
}

func (w *inotifyWatcher) Events() <-chan string { return w.events }
func (w *inotifyWatcher) Errors() <-chan error  { return w.errors }

func (w *inotifyWatcher) Add(dir string) error {
	wd, err := unix.InotifyAddWatch(w.fd, dir, inotifyMask)
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	w.mu.Lock()
	w.dirs[int32(wd)], w.wds[dir] = dir, int32(wd)
	w.mu.Unlock()
	return nil
}

func (w *inotifyWatcher) Remove(dir string) error {
	w.mu.Lock()
	wd, ok := w.wds[dir]
	delete(w.wds, dir)
	delete(w.dirs, wd)
	w.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s is not watched", dir)
	}
	_, err := unix.InotifyRmWatch(w.fd, uint32(wd))
	return err
}

func (w *inotifyWatcher) Close() error {
	close(w.done)
	return w.f.Close()
}

// read turns inotify's events into entry paths until Close.
func (w *inotifyWatcher) read() {
	defer close(w.events)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.report(fmt.Errorf("inotify: %w", err))
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			size := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := buf[off+unix.SizeofInotifyEvent : min(off+unix.SizeofInotifyEvent+size, n)]
			off += unix.SizeofInotifyEvent + size
			if mask&unix.IN_Q_OVERFLOW != 0 {
				w.report(errors.New("inotify: event queue overflowed; some changes may have been missed"))
				continue
			}
			w.mu.Lock()
			dir, ok := w.dirs[wd]
			if mask&unix.IN_IGNORED != 0 && ok { // the directory went, and its watch with it
				delete(w.dirs, wd)
				delete(w.wds, dir)
			}
			w.mu.Unlock()
			if !ok {
				continue
			}
			path := dir
			if i := indexNUL(name); i > 0 {
				path = filepath.Join(dir, string(name[:i]))
			}
			select {
			case w.events <- path:
			case <-w.done:
				return
			}
		}
	}
}

func (w *inotifyWatcher) report(err error) {
	select {
	case w.errors <- err:
	case <-w.done:
	}
}

// indexNUL is the length of a NUL-padded name.
func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}
