package main

// Fuzzing the command-line key parsing: bytes printed with --hex parse back
// to themselves (with or without 0x, in either case); a UTF-8 argument is
// its own bytes and prints back as itself; any argument either parses or is
// a bad-usage error (exit 2) naming the argument.

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseKeyHex(f *testing.F) {
	f.Add([]byte("key"))
	f.Add([]byte{})
	f.Add([]byte{0x00, 0xff, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := formatBytes(b, true)
		for _, arg := range []string{s, "0x" + s, "0X" + strings.ToUpper(s), strings.ToUpper(s)} {
			got, err := parseBytes("KEY", arg, true)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("parseBytes(%q, hex) = %x, %v; want %x", arg, got, err, b)
			}
		}
		k, err := parseKey("KEY", s, true)
		switch {
		case len(b) == 0 && (err == nil || exitCodeFor(err) != exitUsage || !strings.HasPrefix(err.Error(), "KEY: ")):
			t.Fatalf("parseKey of the empty key: %v, want a usage error naming KEY", err)
		case len(b) > 0 && (err != nil || !bytes.Equal(k, b)):
			t.Fatalf("parseKey(%q, hex) = %x, %v", s, k, err)
		}
	})
}

func FuzzParseKeyArg(f *testing.F) {
	f.Add("key", false)
	f.Add("6b6579", true)
	f.Add("0x", true)
	f.Add("0xabc", true)
	f.Add("zz", true)
	f.Add("ключ", false)
	f.Add("\xff\xfe", false)
	f.Fuzz(func(t *testing.T, s string, hexMode bool) {
		b, err := parseBytes("VALUE", s, hexMode)
		if !hexMode {
			if err != nil || !bytes.Equal(b, []byte(s)) {
				t.Fatalf("parseBytes(%q) = %x, %v", s, b, err)
			}
			if utf8.ValidString(s) && formatBytes(b, false) != s {
				t.Fatalf("formatBytes(parseBytes(%q)) = %q", s, formatBytes(b, false))
			}
			return
		}
		digits := s
		if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
			digits = s[2:]
		}
		if err != nil {
			if exitCodeFor(err) != exitUsage || !strings.HasPrefix(err.Error(), "VALUE: ") {
				t.Fatalf("parseBytes(%q, hex): error %v is not a usage error naming VALUE", s, err)
			}
			if _, herr := hex.DecodeString(digits); herr == nil {
				t.Fatalf("parseBytes(%q, hex) refused valid hex: %v", s, err)
			}
			return
		}
		if formatBytes(b, true) != strings.ToLower(digits) {
			t.Fatalf("parseBytes(%q, hex) = %x does not print back as %q", s, b, strings.ToLower(digits))
		}
	})
}
