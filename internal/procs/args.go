// The command lines of rangekv-store and rangekv-placement.

package procs

import (
	"fmt"
	"strconv"
	"strings"
)

// Peer is one entry of a static member list: --initial-stores of a store,
// --initial-cluster of a placement member.
type Peer struct {
	ID   uint64
	Addr string
}

// PeerList renders peers as those flags take them: "1=127.0.0.1:7500,2=...".
func PeerList(peers []Peer) string {
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = fmt.Sprintf("%d=%s", p.ID, p.Addr)
	}
	return strings.Join(parts, ",")
}

// StoreArgs are the flags of one rangekv-store. A store is either
// bootstrapped statically (StoreID, InitialStores) or joins placement
// (Placement); the store refuses a mix, not Args.
type StoreArgs struct {
	// Addr, HTTPAddr and DataDir are always passed (an empty HTTPAddr
	// disables the HTTP server).
	Addr, HTTPAddr, DataDir string
	// StoreID is --store-id (static bootstrap); zero leaves it out.
	StoreID uint64
	// InitialStores is --initial-stores (static bootstrap); empty leaves
	// it out.
	InitialStores []Peer
	// Placement is --placement, the members to join; empty leaves it out.
	Placement []string
	// Extra flags come last (TLS, --raft.profile, test timings).
	Extra []string
}

// Args is the command line, without the binary.
func (a StoreArgs) Args() []string {
	args := []string{"--addr", a.Addr, "--http-addr", a.HTTPAddr, "--data-dir", a.DataDir}
	if a.StoreID != 0 {
		args = append(args, "--store-id", strconv.FormatUint(a.StoreID, 10))
	}
	if len(a.InitialStores) > 0 {
		args = append(args, "--initial-stores", PeerList(a.InitialStores))
	}
	if len(a.Placement) > 0 {
		args = append(args, "--placement", strings.Join(a.Placement, ","))
	}
	return append(args, a.Extra...)
}

// PlacementArgs are the flags of one rangekv-placement member.
type PlacementArgs struct {
	// ID is --id, the member's ID in InitialCluster.
	ID uint64
	// Addr, HTTPAddr and DataDir are always passed.
	Addr, HTTPAddr, DataDir string
	// InitialCluster is --initial-cluster, every member with its address.
	InitialCluster []Peer
	// Replicas is --schedule.replicas; zero leaves placement's default.
	Replicas int
	// Extra flags come last.
	Extra []string
}

// Args is the command line, without the binary.
func (a PlacementArgs) Args() []string {
	args := []string{
		"--id", strconv.FormatUint(a.ID, 10),
		"--addr", a.Addr,
		"--http-addr", a.HTTPAddr,
		"--data-dir", a.DataDir,
		"--initial-cluster", PeerList(a.InitialCluster),
	}
	if a.Replicas != 0 {
		args = append(args, "--schedule.replicas", strconv.Itoa(a.Replicas))
	}
	return append(args, a.Extra...)
}
