package policy

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A file kept open and written in the policy's directory (the audit log, by
// default) wakes the watcher for none of its writes; the policy written
// and closed after them is the first event.
func TestDirWatcherIgnoresWritesToAFileKeptOpen(t *testing.T) {
	dir := t.TempDir()
	w, err := newDirWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	log, err := os.OpenFile(filepath.Join(dir, "audit.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := log.WriteString("a record\n"); err != nil {
			t.Fatal(err)
		}
	}
	policy := filepath.Join(dir, "policies.yaml")
	if err := os.WriteFile(policy, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The policy's creation, then its close after writing; nothing of the log.
	for _, want := range []string{policy, policy} {
		select {
		case got := <-w.Events():
			if got != want {
				t.Fatalf("event for %s, want %s", got, want)
			}
		case err := <-w.Errors():
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %s", want)
		}
	}
}
