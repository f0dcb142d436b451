#!/usr/bin/env bash
# Static checks of the repository.
#
#   scripts/lint.sh          all checks (make lint)
#   scripts/lint.sh --fast   no proto regeneration, no import test (make test)
#
# Checks: gofmt, go vet, `go mod tidy` diff, staticcheck; full mode adds
# the generated proto code diff (regenerates with scripts/genproto.sh,
# which installs protoc when missing) and the repository checks of
# internal/lintcheck (import directions, package docs; make test runs them
# with go test ./...).
# staticcheck is installed at the pinned version into .tools/bin from the
# Go module proxy the first time (or when the pin or the Go version
# changes); that is the only network either mode needs beyond the module
# cache, and a failed install fails the check.
# Every check runs; the script fails at the end if any failed, naming them.
set -uo pipefail
cd "$(dirname "$0")/.."

# staticcheck 2026.2.2 (v0.8.2): the newest release on the Go module proxy,
# checked to run under Go 1.26.
STATICCHECK_VERSION=v0.8.2

usage() { echo "usage: $0 [--fast]" >&2; }
fast=0
case "${1:-}" in
  "") ;;
  --fast) fast=1 ;;
  -h | --help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac
if (($# > 1)); then usage; exit 2; fi

failed=()
# check NAME FUNCTION: runs one check, records its failure.
check() {
  local name=$1
  shift
  echo "--- lint: $name"
  if "$@"; then
    echo "    ok"
  else
    echo "FAIL: lint: $name" >&2
    failed+=("$name")
  fi
}

check_gofmt() {
  local files
  files=$(find . \( -name .git -o -name .tools -o -name bin -o -name data -o -name testdata \) -prune \
    -o -name '*.go' -type f -print | sort)
  [[ -z $files ]] && return 0
  local bad
  # shellcheck disable=SC2086  # file names from find, no spaces in this repo
  bad=$(gofmt -l $files) || return 1
  if [[ -n $bad ]]; then
    echo "these files are not gofmt-formatted; run: gofmt -w <file>" >&2
    sed 's/^/    /' <<<"$bad" >&2
    return 1
  fi
}

check_vet() {
  go vet ./...
}

check_tidy() {
  local out
  if ! out=$(go mod tidy -diff 2>&1); then
    echo "go.mod/go.sum are not tidy; run: go mod tidy" >&2
    sed 's/^/    /' <<<"$out" >&2
    return 1
  fi
}

# check_proto regenerates proto/rangekvpb and compares it with what was
# there before (in a fresh clone that is `git diff --exit-code proto/`; with
# uncommitted .proto edits it still answers "is the generated code in sync
# with the sources"). The tree is left as it was.
check_proto() {
  local tmp rc=0
  tmp=$(mktemp -d)
  cp -a proto/rangekvpb "$tmp/before"
  if ! bash scripts/genproto.sh; then
    echo "scripts/genproto.sh failed (see above)" >&2
    rc=1
  elif ! diff -ru "$tmp/before" proto/rangekvpb >"$tmp/diff"; then
    echo "generated code in proto/rangekvpb is out of date with proto/*.proto; run: make proto" >&2
    head -n 60 "$tmp/diff" | sed 's/^/    /' >&2
    rc=1
  fi
  if ((rc != 0)); then
    rm -rf proto/rangekvpb && cp -a "$tmp/before" proto/rangekvpb
  fi
  rm -rf "$tmp"
  return $rc
}

STATICCHECK="$PWD/.tools/bin/staticcheck"

# staticcheck_current: .tools/bin/staticcheck is the pinned version, built
# by the Go in use (one built by an older Go cannot load newer code).
staticcheck_current() {
  [[ -x $STATICCHECK ]] || return 1
  "$STATICCHECK" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})" || return 1
  [[ $(go version "$STATICCHECK" 2>/dev/null) == *": $(go env GOVERSION)" ]]
}

check_staticcheck() {
  if ! staticcheck_current; then
    echo "    installing staticcheck $STATICCHECK_VERSION into .tools/bin"
    if ! GOBIN="$PWD/.tools/bin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"; then
      echo "could not install staticcheck $STATICCHECK_VERSION (needs the Go module proxy or a warm module cache)" >&2
      return 1
    fi
  fi
  echo "    $("$STATICCHECK" -version)"
  "$STATICCHECK" ./...
}

check_imports() {
  go test -count=1 ./internal/lintcheck/
}

check "gofmt" check_gofmt
check "go vet" check_vet
check "go mod tidy" check_tidy
check "staticcheck $STATICCHECK_VERSION" check_staticcheck
if ((fast == 0)); then
  check "generated proto code" check_proto
  check "repository checks (internal/lintcheck)" check_imports
fi

if ((${#failed[@]} > 0)); then
  echo "lint FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint ok$( ((fast)) && echo ' (fast: proto diff and import test skipped)')"
