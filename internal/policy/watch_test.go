package policy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	h := &watchHarness{
		t:       t,
		path:    filepath.Join(t.TempDir(), "policies.yaml"),
		changes: make(chan *Policy, 16),
		records: make(chan slog.Record, 64),
		done:    make(chan error, 1),
	}
	pol, _, err := Parse(h.path, []byte(loaded))
	if err != nil {
		t.Fatal(err)
	}
	h.write(src)
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(recordHandler{h.records})
	go func() {
		h.done <- watch(ctx, h.path, pol, log, func(p *Policy) { h.changes <- p }, 10*time.Millisecond)
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
	h.write(allowB)
	decides(t, h.next(), "b", Allow)
	// The reload of allowB logs nothing either, and came after the start.
	for len(h.records) > 0 {
		r := <-h.records
		t.Errorf("logged while starting on the loaded content: %s %v", r.Level, r.Message)
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
