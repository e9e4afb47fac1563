// Package cmdline gives every command of this repository the same
// command-line conventions: -h or --help prints the help to stdout and exits
// 0; a usage mistake prints the problem and the usage to stderr and exits 2;
// any other failure is printed to stderr and exits 1.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ExitError carries a process exit status without a message of its own: the
// command has already said what went wrong.
type ExitError int

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Code turns what a command returned into its exit status, printing err to
// stderr as "name: err" unless it is help or an ExitError.
func Code(name string, stderr io.Writer, err error) int {
	var code ExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// Parse parses args into fs. On -h or --help it prints the help to stdout
// and returns flag.ErrHelp; on a bad flag, the flag package's complaint and
// the help go to stderr and it returns ExitError(2). text is the help shown
// above the flags: the usage lines and what the command does.
func Parse(fs *flag.FlagSet, args []string, text string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the help goes where Parse decides, once
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		PrintHelp(stdout, fs, text)
		return flag.ErrHelp
	}
	PrintHelp(stderr, fs, text)
	return ExitError(2)
}

// UsageError prints problem and the help to stderr and returns ExitError(2).
func UsageError(stderr io.Writer, fs *flag.FlagSet, text, problem string) error {
	fmt.Fprintln(stderr, problem)
	PrintHelp(stderr, fs, text)
	return ExitError(2)
}

// PrintHelp writes text, then fs's flags, spelt the way the docs spell them:
// --name for long flags, -n for one-letter ones.
func PrintHelp(w io.Writer, fs *flag.FlagSet, text string) {
	fmt.Fprint(w, text)
	if fs == nil {
		return
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		kind, usage := flag.UnquoteUsage(f)
		line := "  " + dash + f.Name
		if kind != "" {
			line += " " + kind
		}
		if def := f.DefValue; def != "" && def != "false" && def != "0" {
			usage += fmt.Sprintf(" (default %q)", def)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(usage, "\n", "\n      "))
	})
}
