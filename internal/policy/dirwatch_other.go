//go:build !linux

package policy

import "github.com/fsnotify/fsnotify"

// fsnotifyWatcher is the portable dirWatcher.
type fsnotifyWatcher struct {
	*fsnotify.Watcher
	events chan string
	done   chan struct{}
}

func newDirWatcher() (dirWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	fw := &fsnotifyWatcher{Watcher: w, events: make(chan string), done: make(chan struct{})}
	go func() {
		defer close(fw.events)
		for ev := range w.Events {
			select {
			case fw.events <- ev.Name:
			case <-fw.done:
				return
			}
		}
	}()
	return fw, nil
}

func (w *fsnotifyWatcher) Events() <-chan string { return w.events }
func (w *fsnotifyWatcher) Errors() <-chan error  { return w.Watcher.Errors }

func (w *fsnotifyWatcher) Close() error {
	close(w.done)
	return w.Watcher.Close()
}
