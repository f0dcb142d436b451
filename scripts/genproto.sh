#!/usr/bin/env bash
# Regenerates proto/rangekvpb from proto/*.proto with pinned generators.
# protoc comes from Debian's protobuf-compiler (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.0
BIN="$PWD/.tools/bin"
mkdir -p "$BIN"
if ! command -v protoc >/dev/null; then
  echo "installing protoc (Debian protobuf-compiler)" >&2
  (apt-get update -qq && apt-get install -y -qq protobuf-compiler) >/dev/null
fi
[[ -x $BIN/protoc-gen-go ]] || GOBIN="$BIN" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
[[ -x $BIN/protoc-gen-go-grpc ]] || GOBIN="$BIN" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
RAFT=$(go list -m -f '{{.Dir}}' go.etcd.io/raft/v3)
PATH="$BIN:$PATH" protoc -I proto -I "$RAFT/raftpb" \
  --go_out=proto/rangekvpb --go_opt=paths=source_relative \
  --go-grpc_out=proto/rangekvpb --go-grpc_opt=paths=source_relative \
  proto/*.proto
