// Package lintcheck holds checks of the repository itself that run as
// ordinary Go tests (so `go test ./...` and `make test` enforce them): today
// the import-direction rules of DESIGN.md, checked over the real package
// graph that `go list -deps` reports.
//
// It has no non-test code; nothing imports it.
package lintcheck
