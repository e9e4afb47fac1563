package policy

import (
	"strings"
	"unicode/utf8"
)

// Patterns are globs: '*' matches any run of characters (including none),
// '?' exactly one character; everything else matches itself. There are no
// character classes or escapes, because tool names never need them.

func isGlob(pattern string) bool { return strings.ContainsAny(pattern, "*?") }

// literalPrefix is the part of a pattern before its first wildcard: every
// name the pattern matches starts with it.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, "*?"); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// match reports whether name matches the glob pattern. It runs in time
// linear in len(pattern)*len(name) at worst, never allocates, and treats
// '?' as one UTF-8 character (an invalid byte counts as one character).
func match(pattern, name string) bool {
	px, nx := 0, 0
	// Where to resume after the most recent '*' if the rest fails to match:
	// that star then swallows one more character.
	starPx, starNx := -1, 0
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px++
					nx += w
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if starPx >= 0 && starNx < len(name) {
			_, w := utf8.DecodeRuneInString(name[starNx:])
			starNx += w
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}

// covers reports whether every name matched by pattern b is also matched
// by pattern a. It is sound but not complete: true is always right, and it
// is exact for the cases people write ("*", "x_*" before "x_y", "x_*"
// before "x_y*"). It is only used for warnings, at load time.
func covers(a, b string) bool {
	ar, br := []rune(a), []rune(b)
	// memo[i][j] caches whether ar[i:] covers br[j:]: 0 unknown, 1 yes, 2 no.
	memo := make([][]uint8, len(ar)+1)
	for i := range memo {
		memo[i] = make([]uint8, len(br)+1)
	}
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		if m := memo[i][j]; m != 0 {
			return m == 1
		}
		var ok bool
		switch {
		case i == len(ar):
			ok = j == len(br)
		case ar[i] == '*':
			ok = rec(i+1, j) || (j < len(br) && rec(i, j+1))
		case ar[i] == '?':
			ok = j < len(br) && br[j] != '*' && rec(i+1, j+1)
		default:
			ok = j < len(br) && br[j] == ar[i] && rec(i+1, j+1)
		}
		memo[i][j] = 2
		if ok {
			memo[i][j] = 1
		}
		return ok
	}
	return rec(0, 0)
}

// longestLiteral is the longest run of a pattern without wildcards: every
// name the pattern matches contains it.
func longestLiteral(pattern string) string {
	best := ""
	for _, part := range strings.FieldsFunc(pattern, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(part) > len(best) {
			best = part
		}
	}
	return best
}

// literalSuffix is the part of a pattern after its last wildcard: every
// name the pattern matches ends with it.
func literalSuffix(pattern string) string {
	return pattern[strings.LastIndexAny(pattern, "*?")+1:]
}

// trieNode indexes glob entries by a literal part, so a lookup only tries
// the globs that can match instead of every glob in the file. The policy
// keeps two: one keyed by literal prefix (db__drop_*), one keyed by the
// reversed literal suffix for globs that start with a wildcard (*__delete).
type trieNode struct {
	globs    []int // entry indices, ascending, whose key ends here
	children map[byte]*trieNode
}

// keyByte is key's i-th byte, counted from the end when reverse is set.
func keyByte(key string, i int, reverse bool) byte {
	if reverse {
		return key[len(key)-1-i]
	}
	return key[i]
}

func (t *trieNode) insert(key string, reverse bool, idx int) {
	n := t
	for i := range len(key) {
		b := keyByte(key, i, reverse)
		if n.children == nil {
			n.children = make(map[byte]*trieNode)
		}
		c, ok := n.children[b]
		if !ok {
			c = &trieNode{}
			n.children[b] = c
		}
		n = c
	}
	n.globs = append(n.globs, idx)
}

// first visits the globs whose key is a prefix of key (a suffix when
// reverse is set) and returns the lowest entry index below limit for which
// ok holds, or limit.
func (t *trieNode) first(key string, reverse bool, limit int, ok func(idx int) bool) int {
	best := limit
	n := t
	for i := 0; n != nil; i++ {
		for _, idx := range n.globs {
			if idx >= best {
				break
			}
			if ok(idx) {
				best = idx
				break
			}
		}
		if i == len(key) {
			break
		}
		n = n.children[keyByte(key, i, reverse)]
	}
	return best
}
