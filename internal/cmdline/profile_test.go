package cmdline

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartCPUProfile(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		t.Setenv(CPUProfileEnv, "")
		StartCPUProfile(io.Discard)() // nothing to stop, nothing written
	})
	t.Run("writes a profile on stop", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cpu.pprof")
		t.Setenv(CPUProfileEnv, path)
		var stderr strings.Builder
		StartCPUProfile(&stderr)()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// A profile is a gzipped protocol buffer.
		if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b || stderr.Len() > 0 {
			t.Fatalf("profile of %d bytes starting %x; stderr %q", len(data), data[:min(2, len(data))], stderr.String())
		}
	})
	t.Run("unwritable", func(t *testing.T) {
		t.Setenv(CPUProfileEnv, filepath.Join(t.TempDir(), "missing", "cpu.pprof"))
		var stderr strings.Builder
		StartCPUProfile(&stderr)()
		if !strings.Contains(stderr.String(), "no CPU profile") {
			t.Fatalf("stderr %q, want it to say there is no profile", stderr.String())
		}
	})
}
