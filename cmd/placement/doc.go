// Command rangekv-placement runs one member of the placement driver:
// configuration and wiring only; the driver lives in package placement.
package main
