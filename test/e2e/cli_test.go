package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryBinaryHelp builds every command and checks the command-line
// conventions they share: -h and --help print the help to stdout and exit
// 0; a stray argument is a usage error on stderr with exit status 2.
func TestEveryBinaryHelp(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	for _, bin := range []string{"mcp-gate", "pim-emulator", "test-upstream", "mcp-gate-demo", "mcp-gate-bench"} {
		for _, tc := range []struct {
			args     []string
			wantCode int
		}{
			{[]string{"-h"}, 0},
			{[]string{"--help"}, 0},
			{[]string{"bogus"}, 2},
		} {
			t.Run(bin+" "+strings.Join(tc.args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				cmd := exec.Command(filepath.Join(dir, bin), tc.args...)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := 0
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					code = exit.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if code != tc.wantCode {
					t.Errorf("exit status %d, want %d; stderr %q", code, tc.wantCode, stderr.String())
				}
				help, other := stdout.String(), stderr.String()
				if tc.wantCode != 0 {
					help, other = other, help
				}
				if !strings.Contains(help, "Usage:") || !strings.Contains(help, "Flags:") || other != "" {
					t.Errorf("want the help with its flags on %s and nothing on the other stream; stdout %q, stderr %q",
						map[bool]string{true: "stdout", false: "stderr"}[tc.wantCode == 0], stdout.String(), stderr.String())
				}
			})
		}
	}
}
