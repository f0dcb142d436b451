// Keys and values on the command line: UTF-8 strings as given, or hex with
// --hex; and the reverse for output.

package main

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// parseBytes turns the command-line argument s, named what (KEY, VALUE,
// START, ...), into bytes. Without hexMode it is s itself. With hexMode s
// must be an even number of hex digits, upper or lower case, optionally
// after "0x"; "" and "0x" are the empty string. Errors are bad usage.
func parseBytes(what, s string, hexMode bool) ([]byte, error) {
	if !hexMode {
		return []byte(s), nil
	}
	digits := s
	if len(digits) >= 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') {
		digits = digits[2:]
	}
	b, err := hex.DecodeString(digits)
	if err != nil {
		return nil, usageErrorf("%s: %q is not hex (--hex wants an even number of hex digits, e.g. 6b6579): %v", what, s, err)
	}
	return b, nil
}

// parseKey parses a key argument; a key must not be empty.
func parseKey(what, s string, hexMode bool) ([]byte, error) {
	k, err := parseBytes(what, s, hexMode)
	if err != nil {
		return nil, err
	}
	if len(k) == 0 {
		return nil, usageErrorf("%s: must not be empty", what)
	}
	return k, nil
}

// formatBytes renders key or value bytes for output: as they are, or as
// lower-case hex with hexMode.
func formatBytes(b []byte, hexMode bool) string {
	if hexMode {
		return hex.EncodeToString(b)
	}
	return string(b)
}

// quoteKeyMax is the most bytes of a key an error message shows.
const quoteKeyMax = 64

// quoteKey renders a key for an error message, shortened when long.
func quoteKey(k []byte, hexMode bool) string {
	var suffix string
	if len(k) > quoteKeyMax {
		suffix = fmt.Sprintf("... (%d bytes)", len(k))
		k = k[:quoteKeyMax]
	}
	if hexMode {
		return hex.EncodeToString(k) + suffix
	}
	return fmt.Sprintf("%q", k) + suffix
}

// isNegativeNumber reports whether a command-line token looks like a
// negative number ("-5", "-0.5") rather than a flag.
func isNegativeNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	c := s[1]
	return (c >= '0' && c <= '9') || (c == '.' && len(s) > 2 && s[2] >= '0' && s[2] <= '9')
}

// flagArity says, per long name and per shorthand, whether a flag takes a
// value (--limit 5) or not (--hex).
type flagArity struct {
	long  map[string]bool
	short map[byte]bool
}

// protectNegativeArgs lets positional arguments be negative numbers
// (rangekv incr counter -5) although pflag would read "-5" as a flag: from
// the first such argument on, positional arguments move after a "--"
// (keeping their order), flags stay where they are. Arguments without a
// negative number are returned unchanged.
func protectNegativeArgs(args []string, ar flagArity) []string {
	var out, deferred []string
	deferring := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if !deferring {
				return args // nothing to protect before an explicit "--"
			}
			deferred = append(deferred, args[i+1:]...)
			i = len(args)
		case isNegativeNumber(a):
			deferring = true
			deferred = append(deferred, a)
		case strings.HasPrefix(a, "--"):
			out = append(out, a)
			name, _, inline := strings.Cut(a[2:], "=")
			if !inline && ar.long[name] && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		case len(a) > 1 && a[0] == '-':
			out = append(out, a)
			if len(a) == 2 && ar.short[a[1]] && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		case deferring:
			deferred = append(deferred, a)
		default:
			out = append(out, a)
		}
	}
	if !deferring {
		return args
	}
	return append(append(out, "--"), deferred...)
}
