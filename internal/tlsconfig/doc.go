// Package tlsconfig builds the mutual-TLS configurations of every rangekv
// gRPC connection (client → store, client → placement, store ↔ store,
// store → placement, placement ↔ placement) from three PEM files: a
// certificate, its private key and the CA that signs every peer.
//
// Role:
//   - Files names the three files (configuration keys tls.cert, tls.key,
//     tls.ca); Validate refuses a partial set, naming the missing key.
//   - Source holds the loaded material and re-reads it when the files
//     change: at most once per check interval, lazily, on the next TLS
//     handshake (no goroutine). A rotation that does not parse (a key that
//     does not match its certificate while the files are being replaced)
//     keeps the previous material and is reported through the logger.
//   - Server and Client return *tls.Config values that consult the Source on
//     every handshake, so new connections use rotated files without a
//     restart; established connections keep their session.
//   - GenerateDev writes a development CA and node and client certificates
//     (ECDSA P-256) for `rangekv certs`.
//
// Invariants:
//   - A server requires a client certificate and verifies it against the
//     current CA (tls.RequireAndVerifyClientCert); TLS 1.2 is the minimum.
//   - A client verifies the server's chain against the current CA and its
//     name (DNS or IP SAN) against the address it dialled; the standard
//     verification is replaced only to read the CA pool at handshake time
//     (so the CA can rotate too), never skipped.
package tlsconfig
