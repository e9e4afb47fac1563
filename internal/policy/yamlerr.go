package policy

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// yamlError reports a YAML syntax error where the mistake is.
//
// yaml.v3's message names a line but never a column, and for many errors
// the line is where the enclosing block starts rather than where the
// mistake is (a list item indented one space too few is reported at the
// key that holds the list). The mistake is on the first line whose
// addition makes the file fail with the same message, so that line is
// found by parsing prefixes of the file; the column is then the tab in its
// indentation, the character that cannot start a token, or its first
// character.
func (ps *parser) yamlError(data []byte, err error) {
	line, msg := yamlProblem(err)
	lines := bytes.SplitAfter(data, []byte("\n"))
	line = culprit(lines, line, msg)
	text := ""
	if line <= len(lines) {
		text = strings.TrimRight(string(lines[line-1]), "\r\n")
	}
	col, why := yamlColumn(text, msg)
	ps.add(SeverityError, line, col, "%s", why)
}

// yamlProblem splits a yaml.v3 error into its 1-based line (1 when it has
// none) and message.
func yamlProblem(err error) (int, string) {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 1, strings.TrimPrefix(err.Error(), "yaml: ")
	}
	line, _ := strconv.Atoi(m[1])
	// yaml.v3 reports scanner errors with 1-based lines but parser errors
	// with 0-based ones.
	if slices.Contains(yamlParserProblems, m[2]) {
		line++
	}
	return line, m[2]
}

// culprit returns the first line, from reported on, whose addition makes
// the file fail with msg: with the file failing so at its last line and
// not at the line before reported, a binary search finds a line where that
// starts. When the file does not behave so, reported stays.
func culprit(lines [][]byte, reported int, msg string) int {
	lo, hi := reported-1, len(lines) // fails(lo) is false, fails(hi) true
	if lo < 0 || lo >= hi || failsWith(lines[:lo], msg) || !failsWith(lines, msg) {
		return reported
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if failsWith(lines[:mid], msg) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// failsWith reports whether the YAML made of lines fails to parse with msg.
func failsWith(lines [][]byte, msg string) bool {
	dec := yaml.NewDecoder(bytes.NewReader(bytes.Join(lines, nil)))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			_, m := yamlProblem(err)
			return m == msg
		}
	}
}

// yamlColumn returns the 1-based column of a YAML syntax error on line,
// and the message to report there.
func yamlColumn(line, msg string) (int, string) {
	indent := len(line) - len(strings.TrimLeft(line, " \t"))
	tab := strings.IndexByte(line[:indent], '\t')
	if tab < 0 && strings.Contains(msg, "tab character") {
		tab = strings.IndexByte(line, '\t')
	}
	if tab >= 0 {
		return tab + 1, "tabs are not allowed in YAML; indent with spaces"
	}
	col := indent
	switch msg {
	case "found character that cannot start any token":
		// The reserved indicators @ and ` cannot start a plain value.
		for i := indent; i < len(line); i++ {
			if (line[i] == '@' || line[i] == '`') && (i == indent || strings.IndexByte(" \t[{,", line[i-1]) >= 0) {
				col = i
				break
			}
		}
	case "did not find expected ',' or ']'":
		// The line that made the file fail opens the list that is not
		// closed.
		col = max(col, strings.LastIndexByte(line, '['))
	case "did not find expected ',' or '}'":
		col = max(col, strings.LastIndexByte(line, '{'))
	}
	why := "YAML syntax: " + msg
	switch msg {
	case "did not find expected key", "did not find expected '-' indicator":
		why += "; check the indentation: the keys of one mapping, and the items of one list, must line up"
	case "mapping values are not allowed in this context":
		why += "; check the indentation, or quote a value that contains \": \""
	}
	return utf8.RuneCountInString(line[:col]) + 1, why
}

// yamlParserProblems are the messages of yaml.v3's parser (not scanner)
// errors.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}
