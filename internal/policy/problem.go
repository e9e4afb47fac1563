package policy

import (
	"fmt"
	"strings"
)

// Severity says whether a problem makes the file unusable.
type Severity int

const (
	// SeverityError makes the file invalid: it is not loaded.
	SeverityError Severity = iota
	// SeverityWarning points at something that is probably a mistake but
	// leaves the file usable, such as a rule that can never match.
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Problem is one finding about a policy file, located by line and column
// (both 1-based) so editors and CI annotations can jump to it.
type Problem struct {
	File     string
	Line     int
	Col      int
	Severity Severity
	Message  string
}

// String formats the problem as FILE:LINE:COL: message, with "warning: "
// before the message of a warning, like a compiler.
func (p Problem) String() string {
	if p.Severity == SeverityWarning {
		return fmt.Sprintf("%s:%d:%d: warning: %s", p.File, p.Line, p.Col, p.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message)
}

// ValidationError is returned when a policy file has at least one
// error-severity problem. It lists every error, not just the first.
type ValidationError struct {
	File     string
	Problems []Problem // errors only, in file order
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid policy %s: %d error", e.File, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteByte('s')
	}
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}
