package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// configMapVolume is a policy mounted as a Kubernetes ConfigMap volume:
// policies.yaml -> ..data/policies.yaml, ..data -> a timestamped
// directory, swapped by the kubelet's atomic writer.
type configMapVolume struct {
	t     *testing.T
	dir   string
	swaps int
}

// Path is what the gate is given as --policy.
func (v *configMapVolume) Path() string { return filepath.Join(v.dir, "policies.yaml") }

// Write puts text in place as the kubelet does: a new timestamped
// directory, a ..data_tmp link to it renamed over ..data, the old
// directory removed.
func (v *configMapVolume) Write(text string) {
	v.t.Helper()
	v.swaps++
	stamp := fmt.Sprintf("..2026_11_29_10_00_%02d.%09d", v.swaps, v.swaps)
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	if err := os.Mkdir(filepath.Join(v.dir, stamp), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, stamp, "policies.yaml"), []byte(text), 0o644); err != nil {
		v.t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(stamp, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if old == "" {
		if err := os.Symlink(filepath.Join("..data", "policies.yaml"), v.Path()); err != nil {
			v.t.Fatal(err)
		}
		return
	}
	if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
		v.t.Fatal(err)
	}
}

// TestPolicyReloadThroughConfigMapSymlink: a policy behind a ConfigMap's
// symlinks is reloaded when ..data is swapped, and the next call obeys
// it; a swap to the same text reloads nothing; each reload is logged once;
// audit.arguments: clear added by a reload waits for a restart, and the
// reload says so.
func TestPolicyReloadThroughConfigMapSymlink(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	policy := func(audit, tools string) string {
		return fmt.Sprintf("version: 1\naudit:\n  path: %q\n%stools:\n%s", auditFile, audit, tools)
	}
	vol := &configMapVolume{t: t, dir: t.TempDir()}
	vol.Write(policy("", "  \"*\": allow\n"))
	c, stderr := StdioGate(t, nil, append([]string{"--policy", vol.Path(), "--log-level", "debug", "--"}, Upstream("db")...))
	if res := Call(t, c, "echo", map[string]any{"text": "before"}); res.IsError {
		t.Fatalf("echo refused under an allow-all policy: %s", Text(t, res))
	}

	// The gate logs a reload once the new policy decides calls; what it
	// leaves for a restart is the next line, waited for on its own.
	const reloaded = `msg="policy reloaded" `
	waitReloads := func(n int) {
		t.Helper()
		Eventually(t, fmt.Sprintf("reload %d logged", n), func() error {
			if got := strings.Count(stderr.String(), reloaded); got != n {
				return fmt.Errorf("%d reloads logged", got)
			}
			return nil
		})
	}
	vol.Write(policy("  arguments: clear\n", "  echo: deny\n  \"*\": allow\n"))
	waitReloads(1)
	if res := Call(t, c, "echo", map[string]any{"text": "after"}); !res.IsError || !strings.Contains(Text(t, res), "denied by policies.yaml:6") {
		t.Fatalf("echo after the swap: %s", Text(t, res))
	}
	Eventually(t, "the reload says that audit.arguments waits for a restart", func() error {
		if !strings.Contains(stderr.String(), "settings=audit.arguments") {
			return errors.New("not logged")
		}
		return nil
	})
	if res := Call(t, c, "whoami", map[string]any{"secret": "hunter2"}); res.IsError {
		t.Fatalf("whoami refused: %s", Text(t, res))
	}
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), `"args"`) {
		t.Fatalf("arguments recorded in clear before a restart:\n%s", b)
	}

	// The same text in a new directory: seen, and nothing reloaded. Then
	// a change: the second reload is the next one logged.
	const unchanged = "its content unchanged"
	seen := strings.Count(stderr.String(), unchanged)
	vol.Write(policy("  arguments: clear\n", "  echo: deny\n  \"*\": allow\n"))
	Eventually(t, "the swap to the same text seen", func() error {
		if strings.Count(stderr.String(), unchanged) == seen {
			return errors.New("not yet")
		}
		return nil
	})
	vol.Write(policy("", "  \"*\": allow\n"))
	waitReloads(2)
	if res := Call(t, c, "echo", map[string]any{"text": "again"}); res.IsError {
		t.Fatalf("echo refused after the swap back to allow-all: %s", Text(t, res))
	}
	if got := strings.Count(stderr.String(), reloaded); got != 2 {
		t.Fatalf("%d reloads logged for two changes", got)
	}
}
