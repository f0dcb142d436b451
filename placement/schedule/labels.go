// Location labels: isolation scores that say how well a set of stores is
// spread over the failure domains named by Config.LocationLabels.

package schedule

// isolation counts, per location level, the distinct domains a set of
// stores covers: [0] distinct zones, [1] distinct (zone, host) pairs, ...
// Scores compare lexicographically: spreading over more zones beats any
// number of hosts.
type isolation [MaxLocationLabels]int16

// cmp returns -1, 0 or +1 as a is worse than, as good as or better than b.
func (a isolation) cmp(b isolation) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// isolationOf scores stores (indexes into v.stores; negative entries, for
// unknown stores, are skipped). extra, if >= 0, is scored as one more
// store; skip, if >= 0, is left out.
func (v *ClusterView) isolationOf(stores []int32, skip, extra int32) isolation {
	var sc isolation
	if v.levels == 0 {
		return sc
	}
	var buf [16]int32
	set := buf[:0]
	for _, s := range stores {
		if s >= 0 && s != skip {
			set = append(set, s)
		}
	}
	if extra >= 0 {
		set = append(set, extra)
	}
	for lvl := 0; lvl < v.levels; lvl++ {
		n := 0
		for i, s := range set {
			dup := false
			for _, p := range set[:i] {
				if v.loc[p][lvl] == v.loc[s][lvl] {
					dup = true
					break
				}
			}
			if !dup {
				n++
			}
		}
		sc[lvl] = int16(n)
	}
	return sc
}
