package cmdline

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"testing"
)

const text = "Usage: demo [flags]\n"

func newFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.String("bin", "bin", "`directory` holding the binaries")
	fs.Bool("keep", false, "keep the files")
	fs.Bool("v", false, "verbose")
	fs.Int("n", 0, "calls")
	return fs
}

const help = `Usage: demo [flags]

Flags:
  --bin directory
      directory holding the binaries (default "bin")
  --keep
      keep the files
  -n int
      calls
  -v
      verbose
`

func TestParse(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		wantCode       int
		wantErr        error
		stdout, stderr string
	}{
		{"flags", []string{"--bin", "x", "-v"}, 0, nil, "", ""},
		{"-h", []string{"-h"}, 0, flag.ErrHelp, help, ""},
		{"--help after flags", []string{"--keep", "--help"}, 0, flag.ErrHelp, help, ""},
		{"unknown flag", []string{"--nope"}, 2, ExitError(2), "", "flag provided but not defined: -nope\n" + help},
		{"bad value", []string{"-n", "many"}, 2, ExitError(2), "", "invalid value \"many\" for flag -n: parse error\n" + help},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Parse(newFlags(), tt.args, text, &stdout, &stderr)
			if !errors.Is(err, tt.wantErr) && err != tt.wantErr {
				t.Errorf("err %v, want %v", err, tt.wantErr)
			}
			if code := Code("demo", io.Discard, err); code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			if stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
		})
	}
}

func TestUsageError(t *testing.T) {
	var stderr bytes.Buffer
	err := UsageError(&stderr, newFlags(), text, "demo: unexpected argument \"x\"")
	if Code("demo", io.Discard, err) != 2 || stderr.String() != "demo: unexpected argument \"x\"\n"+help {
		t.Errorf("err %v, stderr %q", err, stderr.String())
	}
}

func TestCode(t *testing.T) {
	tests := []struct {
		err    error
		code   int
		stderr string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{ExitError(2), 2, ""},
		{fmt.Errorf("check: %w", ExitError(1)), 1, ""},
		{errors.New("no upstream"), 1, "demo: no upstream\n"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := Code("demo", &stderr, tt.err); code != tt.code || stderr.String() != tt.stderr {
			t.Errorf("Code(%v) = %d, printed %q; want %d, %q", tt.err, code, stderr.String(), tt.code, tt.stderr)
		}
	}
}
