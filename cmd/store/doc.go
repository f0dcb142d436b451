// Command rangekv-store runs one rangekv store: configuration and wiring
// only; the store itself lives in package store.
package main
