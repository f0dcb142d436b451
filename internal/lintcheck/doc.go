// Package lintcheck holds checks of the repository itself that run as
// ordinary Go tests (so `go test ./...` and `make test` enforce them): the
// import-direction rules of DESIGN.md, checked over the real package graph
// that `go list -deps` reports, and the package-documentation rule (a
// package's documentation is its doc.go's comment, opening "Package <name>"
// or "Command", and no other file's; scope comments stand apart from the
// `package` clause).
//
// It has no non-test code; nothing imports it.
package lintcheck
