// The three files and the errors that name the configuration key at fault.

package tlsconfig

import (
	"fmt"
	"strings"
)

// Configuration keys of the three files (flags --tls-cert, --tls-key,
// --tls-ca; environment RANGEKV_TLS_CERT, RANGEKV_TLS_KEY, RANGEKV_TLS_CA).
const (
	KeyCert = "tls.cert"
	KeyKey  = "tls.key"
	KeyCA   = "tls.ca"
)

// Files names the PEM files of one process.
type Files struct {
	// Cert is this process's certificate (chain), Key its private key.
	Cert, Key string
	// CA holds the certificate(s) every peer's certificate must chain to.
	CA string
}

// Enabled reports whether any file is given.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Validate accepts all three files or none; a partial set is an *Error
// naming the first missing key.
func (f Files) Validate() error {
	if !f.Enabled() {
		return nil
	}
	var set, missing []string
	for _, kv := range []struct{ key, val string }{{KeyCert, f.Cert}, {KeyKey, f.Key}, {KeyCA, f.CA}} {
		if kv.val == "" {
			missing = append(missing, kv.key)
		} else {
			set = append(set, kv.key)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	verb := " is"
	if len(set) > 1 {
		verb = " are"
	}
	return &Error{Key: missing[0], Err: fmt.Errorf("missing: TLS needs %s, %s and %s together (or none of them for plaintext); only %s%s set",
		KeyCert, KeyKey, KeyCA, strings.Join(set, " and "), verb)}
}

// Error is a TLS configuration problem; Key says which file (KeyCert,
// KeyKey or KeyCA) is at fault.
type Error struct {
	Key  string
	Path string // "" when the key is not set
	Err  error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %v", e.Key, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Key, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
