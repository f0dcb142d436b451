#!/usr/bin/env bash
# Static checks of the repository.
#
#   scripts/lint.sh          all checks (make lint)
#   scripts/lint.sh --fast   no proto regeneration, no staticcheck, no
#                            network beyond the module cache (make test)
#
# Checks: gofmt, go vet, `go mod tidy` diff; full mode adds the generated
# proto code diff (regenerates with scripts/genproto.sh, which installs
# protoc when missing), staticcheck, and the repository checks of
# internal/lintcheck (import directions, package docs; make test runs them
# with go test ./...).
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

check_staticcheck() {
  local v
  if ! v=$(go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" -version 2>&1); then
    echo "note: staticcheck $STATICCHECK_VERSION cannot run here (skipped):" >&2
    sed 's/^/    /' <<<"$v" | tail -n 5 >&2
    return 0
  fi
  echo "    $v"
  go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...
}

check_imports() {
  go test -count=1 ./internal/lintcheck/
}

check "gofmt" check_gofmt
check "go vet" check_vet
check "go mod tidy" check_tidy
if ((fast == 0)); then
  check "generated proto code" check_proto
  check "staticcheck $STATICCHECK_VERSION" check_staticcheck
  check "repository checks (internal/lintcheck)" check_imports
fi

if ((${#failed[@]} > 0)); then
  echo "lint FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint ok$( ((fast)) && echo ' (fast: proto diff and staticcheck skipped)')"
