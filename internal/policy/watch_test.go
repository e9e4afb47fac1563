package policy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordHandler passes every log record to a channel so tests can wait for
// a specific one instead of sleeping.
type recordHandler struct{ records chan slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.records <- r
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

type watchHarness struct {
	t       *testing.T
	path    string
	changes chan *Policy
	records chan slog.Record
	done    chan error
}

// startWatch writes src to a fresh policies.yaml and watches it, as a
// caller that has loaded it.
func startWatch(t *testing.T, src string) *watchHarness {
	t.Helper()
	return startWatchLoaded(t, src, src)
}

// startWatchLoaded watches a fresh policies.yaml holding src for a caller
// that loaded the content loaded: they differ when the file changed between
// the caller's Load and Watch.
func startWatchLoaded(t *testing.T, loaded, src string) *watchHarness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policies.yaml")
	writeFile(t, path, src)
	return watchPath(t, path, loaded)
}

// watchPath watches the policy at path for a caller that loaded the
// content loaded.
func watchPath(t *testing.T, path, loaded string) *watchHarness {
	t.Helper()
	w, err := newDirWatcher()
	if err != nil {
		t.Fatal(err)
	}
	return watchWith(t, path, loaded, w)
}

// watchWith watches the policy at path through w, which it closes at the
// end of the test.
func watchWith(t *testing.T, path, loaded string, w dirWatcher) *watchHarness {
	t.Helper()
	t.Cleanup(func() { w.Close() })
	h := &watchHarness{
		t:       t,
		path:    path,
		changes: make(chan *Policy, 16),
		records: make(chan slog.Record, 64),
		done:    make(chan error, 1),
	}
	pol, _, err := Parse(h.path, []byte(loaded))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(recordHandler{h.records})
	go func() {
		h.done <- watch(ctx, h.path, pol, log, func(p *Policy) { h.changes <- p }, w, 10*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Watch returned %v after cancel, want nil", err)
		}
	})
	return h
}

func (h *watchHarness) write(src string) {
	h.t.Helper()
	if err := os.WriteFile(h.path, []byte(src), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// next waits for the next policy handed to onChange.
func (h *watchHarness) next() *Policy {
	h.t.Helper()
	select {
	case p := <-h.changes:
		return p
	case <-time.After(10 * time.Second):
		h.t.Fatal("no reload within 10s")
		return nil
	}
}

// waitLog waits for a record of level whose message or attributes contain
// want.
func (h *watchHarness) waitLog(level slog.Level, want string) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-h.records:
			found := false
			r.Attrs(func(a slog.Attr) bool {
				found = found || strings.Contains(a.Value.String(), want)
				return true
			})
			if r.Level == level && (found || strings.Contains(r.Message, want)) {
				return
			}
		case <-deadline:
			h.t.Fatalf("no %v log containing %q within 10s", level, want)
		}
	}
}

// decides checks which rule the policy uses for tool.
func decides(t *testing.T, p *Policy, tool string, want Action) {
	t.Helper()
	if d := p.Decide(tool, nil); d.Action != want {
		t.Fatalf("reloaded policy decides %s: %v (%s), want %v", tool, d.Action, d.Rule, want)
	}
}

const (
	allowA = "version: 1\ntools:\n  a: allow\n"
	denyA  = "version: 1\ntools:\n  a: deny\n"
	allowB = "version: 1\ntools:\n  b: allow\n"
)

func TestWatchSwapsValidFile(t *testing.T) {
	h := startWatch(t, allowA)
	h.write(denyA)
	decides(t, h.next(), "a", Deny)
}

func TestWatchKeepsLastGoodOnInvalidFile(t *testing.T) {
	h := startWatch(t, allowA)

	h.write("version: 1\ntools:\n  a: alow\n  b: {role: \"\"}\n")
	h.waitLog(slog.LevelError, `policies.yaml:3:6: tools["a"]: want allow, deny`)
	h.waitLog(slog.LevelError, `policies.yaml:4:13: tools["b"].role: must not be empty`)
	select {
	case p := <-h.changes:
		t.Fatalf("an invalid file replaced the policy: %+v", p)
	default:
	}

	h.write(allowB)
	p := h.next()
	decides(t, p, "b", Allow)
	decides(t, p, "a", Deny)
}

func TestWatchEditorRenameOnSave(t *testing.T) {
	h := startWatch(t, allowA)

	// Write a temporary file and rename it over the policy, as vim, VS Code
	// and atomic-write helpers do.
	tmp := filepath.Join(filepath.Dir(h.path), ".policies.yaml.swp")
	if err := os.WriteFile(tmp, []byte(denyA), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		t.Fatal(err)
	}
	decides(t, h.next(), "a", Deny)

	// Move the file away and write a new one (vim's backup-then-write).
	if err := os.Rename(h.path, h.path+"~"); err != nil {
		t.Fatal(err)
	}
	h.write(allowB)
	decides(t, h.next(), "b", Allow)
}

func TestWatchIgnoresUnchangedContentAndOtherFiles(t *testing.T) {
	h := startWatch(t, allowA)

	if err := os.Chtimes(h.path, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	h.write(allowA) // same bytes again
	if err := os.WriteFile(filepath.Join(filepath.Dir(h.path), "other.yaml"), []byte(denyA), 0o600); err != nil {
		t.Fatal(err)
	}
	h.write(allowB)
	// Had the same content or the other file caused a reload, it would
	// arrive first.
	decides(t, h.next(), "b", Allow)
}

func TestWatchRemovedFileKeepsPolicy(t *testing.T) {
	h := startWatch(t, allowA)
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.waitLog(slog.LevelError, "cannot read the file")
	h.write(allowA) // the policy in force comes back: nothing to reload
	h.write(allowB)
	decides(t, h.next(), "b", Allow)
}

func TestWatchStartsQuietly(t *testing.T) {
	// The caller has reported the file's warnings and logged its load;
	// watching the same content must not do either again.
	const unreachable = "version: 1\ntools:\n  \"*\": allow\n  a: deny\n"
	h := startWatch(t, unreachable)
	// The read when watching starts may come at any moment: it must not
	// see a file half written.
	replaceFile(t, h.path, allowB)
	decides(t, h.next(), "b", Allow)
	// The reload of allowB logs nothing either, and came after the start.
	for len(h.records) > 0 {
		if r := <-h.records; r.Level > slog.LevelDebug {
			t.Errorf("logged while starting on the loaded content: %s %v", r.Level, r.Message)
		}
	}
}

func TestWatchSeesChangeBeforeItStarted(t *testing.T) {
	h := startWatchLoaded(t, allowA, denyA)
	decides(t, h.next(), "a", Deny)
}

func TestWatchMissingDirectory(t *testing.T) {
	pol, _, err := Parse("policies.yaml", []byte(allowA))
	if err != nil {
		t.Fatal(err)
	}
	err = Watch(context.Background(), filepath.Join(t.TempDir(), "nope", "policies.yaml"), pol, slog.New(recordHandler{make(chan slog.Record, 4)}), func(*Policy) {})
	if err == nil {
		t.Fatal("Watch on a missing directory returned nil")
	}
}

// symlink makes link point at target, replacing any link there by a
// rename, as `ln -sfn` and the kubelet do, so that link always exists.
func symlink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, src string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes src to a temporary file and renames it over path.
func replaceFile(t *testing.T, path, src string) {
	t.Helper()
	writeFile(t, path+".tmp", src)
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// configMap lays out dir as a Kubernetes ConfigMap volume holding src as
// policies.yaml, or swaps its content as the kubelet's atomic writer does:
// a new timestamped directory, ..data pointed at it by a rename, the old
// directory removed.
func configMap(t *testing.T, dir, stamp, src string) {
	t.Helper()
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	writeFile(t, filepath.Join(dir, stamp, "policies.yaml"), src)
	symlink(t, stamp, filepath.Join(dir, "..data"))
	if _, err := os.Lstat(filepath.Join(dir, "policies.yaml")); err != nil {
		if err := os.Symlink(filepath.Join("..data", "policies.yaml"), filepath.Join(dir, "policies.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchFollowsSymlinks(t *testing.T) {
	tests := []struct {
		name string
		// setup lays out a policy holding src and returns the path to
		// watch; swap changes what that path reads to src.
		setup func(t *testing.T, dir, src string) string
		swap  func(t *testing.T, dir, src string, n int)
	}{
		{"ConfigMap ..data swap", func(t *testing.T, dir, src string) string {
			configMap(t, dir, "..2026_11_29_0", src)
			return filepath.Join(dir, "policies.yaml")
		}, func(t *testing.T, dir, src string, n int) {
			configMap(t, dir, fmt.Sprintf("..2026_11_29_%d", n), src)
		}},
		{"ConfigMap path through ..data", func(t *testing.T, dir, src string) string {
			configMap(t, dir, "..2026_11_29_0", src)
			return filepath.Join(dir, "..data", "policies.yaml")
		}, func(t *testing.T, dir, src string, n int) {
			configMap(t, dir, fmt.Sprintf("..2026_11_29_%d", n), src)
		}},
		{"link retargeted", func(t *testing.T, dir, src string) string {
			writeFile(t, filepath.Join(dir, "versions", "0.yaml"), src)
			symlink(t, filepath.Join("versions", "0.yaml"), filepath.Join(dir, "policies.yaml"))
			return filepath.Join(dir, "policies.yaml")
		}, func(t *testing.T, dir, src string, n int) {
			writeFile(t, filepath.Join(dir, "versions", fmt.Sprintf("%d.yaml", n)), src)
			symlink(t, filepath.Join("versions", fmt.Sprintf("%d.yaml", n)), filepath.Join(dir, "policies.yaml"))
		}},
		{"target in another directory edited in place", func(t *testing.T, dir, src string) string {
			writeFile(t, filepath.Join(dir, "etc", "real.yaml"), src)
			writeFile(t, filepath.Join(dir, "run", "placeholder"), "")
			// Two links, each in its own directory, the first absolute.
			symlink(t, filepath.Join(dir, "run", "mid.yaml"), filepath.Join(dir, "policies.yaml"))
			symlink(t, filepath.Join("..", "etc", "real.yaml"), filepath.Join(dir, "run", "mid.yaml"))
			return filepath.Join(dir, "policies.yaml")
		}, func(t *testing.T, dir, src string, _ int) {
			writeFile(t, filepath.Join(dir, "etc", "real.yaml"), src)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			h := watchPath(t, tt.setup(t, dir, allowA), allowA)
			tt.swap(t, dir, denyA, 1)
			decides(t, h.next(), "a", Deny)
			tt.swap(t, dir, denyA, 2) // same content: no reload
			h.waitLog(slog.LevelDebug, "content unchanged")
			tt.swap(t, dir, allowB, 3)
			decides(t, h.next(), "b", Allow)
			tt.swap(t, dir, "version: 1\ntools:\n  b: alow\n", 4)
			h.waitLog(slog.LevelError, `tools["b"]: want allow, deny`)
			tt.swap(t, dir, denyA, 5)
			decides(t, h.next(), "a", Deny)
		})
	}
}

// pausedWatcher holds its first Add until resumed, so a test can change
// the links between the walk that named a directory and its watch.
type pausedWatcher struct {
	dirWatcher
	paused, resume chan struct{}
	once           sync.Once
}

func (w *pausedWatcher) Add(dir string) error {
	w.once.Do(func() {
		close(w.paused)
		<-w.resume
	})
	return w.dirWatcher.Add(dir)
}

// TestWatchStartsThroughAConfigMapSwap: a swap while the watch starts
// (the directory the path resolved to removed before it is watched) is
// followed, not the end of watching.
func TestWatchStartsThroughAConfigMapSwap(t *testing.T) {
	for _, through := range []string{"policies.yaml", filepath.Join("..data", "policies.yaml")} {
		t.Run(through, func(t *testing.T) {
			dir := t.TempDir()
			configMap(t, dir, "..2026_11_29_0", allowA)
			real, err := newDirWatcher()
			if err != nil {
				t.Fatal(err)
			}
			w := &pausedWatcher{dirWatcher: real, paused: make(chan struct{}), resume: make(chan struct{})}
			h := watchWith(t, filepath.Join(dir, through), allowA, w)
			<-w.paused
			configMap(t, dir, "..2026_11_29_1", denyA)
			close(w.resume)
			decides(t, h.next(), "a", Deny)
			configMap(t, dir, "..2026_11_29_2", allowB)
			decides(t, h.next(), "b", Allow)
		})
	}
}

// TestWatchLogsUnreadableFileOnce: events while the file is missing log
// its absence once, not once per event.
func TestWatchLogsUnreadableFileOnce(t *testing.T) {
	h := startWatch(t, allowA)
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.waitLog(slog.LevelError, "cannot read the file")
	for i := range 3 {
		// Each makes an event on the path, and a reload that cannot read.
		if err := os.Symlink(fmt.Sprintf("missing-%d", i), h.path); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(h.path); err != nil {
			t.Fatal(err)
		}
	}
	replaceFile(t, h.path, allowB) // never seen half written
	decides(t, h.next(), "b", Allow)
	for len(h.records) > 0 {
		if r := <-h.records; r.Level > slog.LevelDebug {
			t.Errorf("logged again: %s %v", r.Level, r.Message)
		}
	}
}

func TestChainIsBounded(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.Symlink(b, a); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(a, b); err != nil {
		t.Fatal(err)
	}
	if got := chain(a); len(got) != maxLinks+1 {
		t.Fatalf("a link cycle gave %d entries, want %d", len(got), maxLinks+1)
	}
	if got, want := chain(filepath.Join(dir, "missing", "p.yaml")), []string{filepath.Join(dir, "missing")}; !slices.Equal(got, want) {
		t.Fatalf("chain of a missing path = %q, want %q", got, want)
	}
}
