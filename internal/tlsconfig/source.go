// The reloadable material: the files are re-read lazily, on a handshake,
// at most once per check interval; a change that parses replaces the
// material, one that does not is logged and the previous one kept.

package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultCheckInterval is how often, at most, a handshake re-reads the files.
const DefaultCheckInterval = time.Second

// Options tune a Source. The zero value is usable.
type Options struct {
	// CheckInterval: a handshake re-reads the files when the last check is
	// at least this old (default DefaultCheckInterval).
	CheckInterval time.Duration
	// Now is the clock of the check interval (default time.Now).
	Now func() time.Time
	// Logger reports reloads and failed reloads (default slog.Default()).
	Logger *slog.Logger
}

// material is one consistent set of loaded files.
type material struct {
	cert                   *tls.Certificate
	pool                   *x509.CertPool
	certPEM, keyPEM, caPEM []byte
}

// Source holds the current certificate, key and CA pool of one process.
// Safe for concurrent use.
type Source struct {
	files    Files
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu        sync.Mutex
	cur       *material
	lastCheck time.Time
	lastErr   error
}

// Load reads and checks the three files. Every failure is an *Error naming
// the key at fault: a file that cannot be read, a certificate or CA that is
// not PEM, a key that does not match the certificate, or a certificate the
// CA does not sign.
func Load(f Files, opts Options) (*Source, error) {
	if !f.Enabled() {
		return nil, &Error{Key: KeyCert, Err: errors.New("missing: no TLS files given")}
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Source{files: f, interval: opts.CheckInterval, now: opts.Now, log: opts.Logger}
	raw, err := readFiles(f)
	if err != nil {
		return nil, err
	}
	m, err := parse(f, raw)
	if err != nil {
		return nil, err
	}
	s.cur, s.lastCheck = m, s.now()
	return s, nil
}

// Files returns the files the Source reads.
func (s *Source) Files() Files { return s.files }

// Leaf returns the current certificate (after a check if one is due).
func (s *Source) Leaf() *x509.Certificate { return s.current().cert.Leaf }

// Err returns the error of the last failed reload, nil after a successful
// one.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Reload re-reads the files now. On error the previous material stays.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastCheck = s.now()
	return s.refreshLocked()
}

// current returns the material, re-reading the files first when the last
// check is older than the interval (or the clock went back).
func (s *Source) current() *material {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if d := now.Sub(s.lastCheck); d >= s.interval || d < 0 {
		s.lastCheck = now
		_ = s.refreshLocked() // logged; the previous material stays
	}
	return s.cur
}

func (s *Source) refreshLocked() error {
	raw, err := readFiles(s.files)
	if err == nil && bytes.Equal(raw.cert, s.cur.certPEM) && bytes.Equal(raw.key, s.cur.keyPEM) && bytes.Equal(raw.ca, s.cur.caPEM) {
		s.lastErr = nil
		return nil
	}
	var m *material
	if err == nil {
		m, err = parse(s.files, raw)
	}
	if err != nil {
		if s.lastErr == nil || s.lastErr.Error() != err.Error() {
			s.log.Warn("TLS files changed but cannot be loaded; keeping the previous certificate", "err", err)
		}
		s.lastErr = err
		return err
	}
	s.cur, s.lastErr = m, nil
	s.log.Info("TLS certificate reloaded", "serial", fmt.Sprintf("%X", m.cert.Leaf.SerialNumber),
		"subject", m.cert.Leaf.Subject.String(), "not_after", m.cert.Leaf.NotAfter)
	return nil
}

type rawFiles struct{ cert, key, ca []byte }

func readFiles(f Files) (rawFiles, error) {
	var r rawFiles
	for _, x := range []struct {
		key, path string
		dst       *[]byte
	}{{KeyCert, f.Cert, &r.cert}, {KeyKey, f.Key, &r.key}, {KeyCA, f.CA, &r.ca}} {
		b, err := os.ReadFile(x.path)
		if err != nil {
			return r, &Error{Key: x.key, Path: x.path, Err: err}
		}
		*x.dst = b
	}
	return r, nil
}

func parse(f Files, r rawFiles) (*material, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.ca) {
		return nil, &Error{Key: KeyCA, Path: f.CA, Err: errors.New("no PEM certificate in the file")}
	}
	var chain []*x509.Certificate
	rest := r.cert
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, &Error{Key: KeyCert, Path: f.Cert, Err: err}
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, &Error{Key: KeyCert, Path: f.Cert, Err: errors.New("no PEM certificate in the file")}
	}
	pair, err := tls.X509KeyPair(r.cert, r.key)
	if err != nil {
		return nil, &Error{Key: KeyKey, Path: f.Key, Err: fmt.Errorf("not the private key of %s (%s): %w", KeyCert, f.Cert, err)}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, &Error{Key: KeyCert, Path: f.Cert, Err: fmt.Errorf("not valid under %s (%s): %w", KeyCA, f.CA, err)}
	}
	pair.Leaf = chain[0]
	return &material{cert: &pair, pool: pool, certPEM: r.cert, keyPEM: r.key, caPEM: r.ca}, nil
}
