// Re-introducing fixed bugs, to measure how many seeds the simulation
// needs to find each (Config.Bug).

package sim

import "github.com/rangekv/rangekv/store"

// applyBugKnobs sets the store knobs that undo the fix named by
// Config.Bug.
func (w *world) applyBugKnobs(k *store.TestingKnobs) {
	_ = k
	switch w.cfg.Bug {
	case "":
	default:
		panic("sim: unknown bug " + w.cfg.Bug)
	}
}
