package placement

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/logadapt"
)

const failedPrecondition = codes.FailedPrecondition

func statusErr(c codes.Code, format string, args ...any) error {
	return status.Errorf(c, format, args...)
}

// pebbleLogger is the shared slog adapter for Pebble.
type pebbleLogger = logadapt.Pebble
