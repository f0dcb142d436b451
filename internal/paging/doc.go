// Package paging holds what the paged list APIs share (the store's
// Admin.ListRanges, placement's ScanRanges): the page size rules and the
// opaque page tokens. A token names where the next page starts; it is
// base64 of a one-byte kind and the position, so a token of one API, a
// hand-made or a truncated one is refused with an error naming page_token.
package paging
