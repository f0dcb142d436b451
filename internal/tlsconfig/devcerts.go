// A development certificate authority: a CA, a node certificate (server
// and client use, for stores and placement members) and a client
// certificate (for the CLI and applications), ECDSA P-256.

package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CA is a certificate authority that issues certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// Pair is a certificate and its private key, PEM-encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// NewCA makes a self-signed CA valid from notBefore for validFor.
func NewCA(commonName string, notBefore time.Time, validFor time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"rangekv development"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads a CA certificate and key written by GenerateDev.
func LoadCA(certPath, keyPath string) (*CA, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(cb)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM certificate", certPath)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	kblk, _ := pem.Decode(kb)
	if kblk == nil {
		return nil, fmt.Errorf("%s: no PEM key", keyPath)
	}
	key, err := x509.ParseECPrivateKey(kblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: cb}, nil
}

// KeyPEM is the CA's private key, PEM-encoded.
func (ca *CA) KeyPEM() ([]byte, error) { return ecKeyPEM(ca.Key) }

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName string
	// Hosts are the subject alternative names: IP addresses or DNS names.
	Hosts []string
	// Server and Client set the extended key usages.
	Server, Client bool
	NotBefore      time.Time
	ValidFor       time.Duration
}

// Issue signs a new certificate (with a new key and a random serial).
func (ca *CA) Issue(l Leaf) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: []string{"rangekv development"}},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotBefore.Add(l.ValidFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if l.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, err
	}
	kp, err := ecKeyPEM(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: kp}, nil
}

func ecKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// DevOptions say what GenerateDev makes.
type DevOptions struct {
	// Hosts are the node certificate's IP and DNS names (every address
	// peers and clients dial); Names are more DNS names for it (e.g. the
	// host names of a compose file: store1, store2, ...).
	Hosts, Names []string
	// Force overwrites existing files.
	Force bool
	// Now is when the certificates become valid (less an hour for clock
	// skew); zero means time.Now().
	Now time.Time
	// CAValidity and LeafValidity default to 10 years and 2 years.
	CAValidity, LeafValidity time.Duration
}

// DevFiles are the files GenerateDev writes, in order.
var DevFiles = []string{"ca.crt", "ca.key", "node.crt", "node.key", "client.crt", "client.key"}

// GenerateDev writes a development CA (ca.crt, ca.key), a node certificate
// for stores and placement members (node.crt, node.key: server and client
// use, SANs from Hosts and Names) and a client certificate (client.crt,
// client.key) into dir, creating it. Without Force it writes nothing if any
// of the files exists. It returns the paths written.
func GenerateDev(dir string, o DevOptions) ([]string, error) {
	var hosts []string
	for _, h := range append(append([]string(nil), o.Hosts...), o.Names...) {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, errors.New("hosts: at least one host name or IP address is needed for the node certificate")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.CAValidity == 0 {
		o.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if o.LeafValidity == 0 {
		o.LeafValidity = 2 * 365 * 24 * time.Hour
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range DevFiles {
		p := filepath.Join(dir, f)
		paths = append(paths, p)
		if _, err := os.Stat(p); err == nil && !o.Force {
			return nil, fmt.Errorf("%s already exists (use --force to overwrite)", p)
		}
	}
	nb := o.Now.Add(-time.Hour)
	ca, err := NewCA("rangekv development CA", nb, o.CAValidity)
	if err != nil {
		return nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	node, err := ca.Issue(Leaf{CommonName: "rangekv-node", Hosts: hosts, Server: true, Client: true, NotBefore: nb, ValidFor: o.LeafValidity})
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue(Leaf{CommonName: "rangekv-client", Client: true, NotBefore: nb, ValidFor: o.LeafValidity})
	if err != nil {
		return nil, err
	}
	contents := [][]byte{ca.CertPEM, caKey, node.CertPEM, node.KeyPEM, client.CertPEM, client.KeyPEM}
	for i, p := range paths {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".key") {
			mode = 0o600
		}
		if err := writeFile(p, contents[i], mode, o.Force); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// writeFile writes b to p (fsynced); without force an existing file is an
// error.
func writeFile(p string, b []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(p, flags, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
