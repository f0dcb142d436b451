// Page limits and page tokens: a range ID token (the store's listing, in
// range ID order) and a key token (placement's scan, in key order).

package paging

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// DefaultLimit is a page's size when the request's limit is 0.
	DefaultLimit = 1000
	// MaxLimit is the largest limit a request may ask for.
	MaxLimit = 10000
)

// Limit resolves a request's limit: 0 is DefaultLimit; above MaxLimit is
// an InvalidArgument error naming the field and the maximum.
func Limit(n uint32) (int, error) {
	switch {
	case n == 0:
		return DefaultLimit, nil
	case n > MaxLimit:
		return 0, status.Errorf(codes.InvalidArgument, "limit: %d is above the maximum of %d per page (0: the default, %d); page with next_page_token", n, MaxLimit, DefaultLimit)
	}
	return int(n), nil
}

// Token kinds: the first byte of a decoded token.
const (
	kindRangeID = 'i'
	kindKey     = 'k'
)

var enc = base64.RawURLEncoding

// RangeIDToken is the token of a page that starts after range ID id.
func RangeIDToken(after uint64) string {
	b := binary.BigEndian.AppendUint64([]byte{kindRangeID}, after)
	return enc.EncodeToString(b)
}

// ParseRangeIDToken returns the range ID a token made by RangeIDToken
// continues after; "" is 0 (from the first range).
func ParseRangeIDToken(tok string) (uint64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := enc.DecodeString(tok)
	if err != nil || len(b) != 9 || b[0] != kindRangeID {
		return 0, badToken(tok)
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

// KeyToken is the token of a page that starts at the range holding key.
func KeyToken(key []byte) string {
	return enc.EncodeToString(append([]byte{kindKey}, key...))
}

// ParseKeyToken returns the key a token made by KeyToken starts at.
func ParseKeyToken(tok string) ([]byte, error) {
	b, err := enc.DecodeString(tok)
	if err != nil || len(b) < 2 || b[0] != kindKey {
		return nil, badToken(tok)
	}
	return b[1:], nil
}

func badToken(tok string) error {
	shown := tok
	if len(shown) > 40 {
		shown = shown[:40] + "..."
	}
	return status.Error(codes.InvalidArgument, fmt.Sprintf("page_token: %q is not a page token of this list (pass a previous answer's next_page_token unchanged, or \"\" for the first page)", shown))
}
