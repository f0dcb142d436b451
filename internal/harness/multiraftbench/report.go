package main

// The machine description and the markdown summary.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type machineInfo struct {
	date      string
	nproc     int
	cpuModel  string
	memory    string
	disk      string
	goVersion string
	commit    string
	loadStart string
	kernel    string
}

func gatherMachine(ctx context.Context, dir string) machineInfo {
	m := machineInfo{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		nproc:     runtime.NumCPU(),
		cpuModel:  "unknown",
		goVersion: runtime.Version(),
		loadStart: loadavg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
					m.memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.disk = diskOf(dir)
	m.commit = gitCommit(ctx)
	return m
}

// diskOf describes the filesystem and block device holding dir.
func diskOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown"
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	var dev, mnt, fstype string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 3 {
			continue
		}
		mp := fl[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(mnt) {
			dev, mnt, fstype = fl[0], mp, fl[2]
		}
	}
	out := fmt.Sprintf("%s on %s (%s)", dev, mnt, fstype)
	base := filepath.Base(dev)
	for len(base) > 0 && base[len(base)-1] >= '0' && base[len(base)-1] <= '9' && !strings.HasPrefix(base, "nvme") && !strings.HasPrefix(base, "vd") {
		base = base[:len(base)-1] // sda1 -> sda
	}
	if b, err := os.ReadFile(filepath.Join("/sys/block", base, "queue/rotational")); err == nil {
		out += fmt.Sprintf(", /sys/block/%s/queue/rotational=%s", base, strings.TrimSpace(string(b)))
	}
	if strings.HasPrefix(base, "vd") {
		out += ", virtio block device"
	}
	return out
}

func gitCommit(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(b))
	if s, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(s))) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func passMiss(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**MISSED**"
}

func join[T any](v []T, f func(T) string) string {
	var out []string
	for _, x := range v {
		out = append(out, f(x))
	}
	return strings.Join(out, " / ")
}

func render(o *options, r *results) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.machine
	p("### Run of %s\n\n", m.date)
	p("| | |\n|---|---|\n")
	p("| machine | %d CPUs (`nproc`), %s, %s RAM, kernel %s |\n", m.nproc, m.cpuModel, m.memory, m.kernel)
	p("| disk | %s |\n", m.disk)
	p("| Go | %s; rangekv %s |\n", m.goVersion, m.commit)
	p("| load average (1/5/15 min) | %s at start, %s at end |\n", m.loadStart, r.loadEnd)
	extra := ""
	if o.storeArgs != "" {
		extra = fmt.Sprintf(", `%s`", o.storeArgs)
	}
	p("| stores | 3 `rangekv-store` processes on 127.0.0.1, static bootstrap, `--raft.profile %s`%s (election timeout %s, fsync on) |\n", o.profile, extra, o.election)
	p("| whole run | %.0f s |\n\n", r.elapsed.Seconds())

	if len(r.idle) > 0 {
		p("#### Idle cost (every replica quiescent, %s window)\n\n", o.idle)
		p("| ranges | splits (time, rate) | quiescent replicas at the end (s1 / s2 / s3) | CPU, %% of one core (s1 / s2 / s3) | batches sent/s (s1 / s2 / s3) | batches/s per ordered store pair | Raft messages sent/s (all stores) | machine busy, %% of all cores (the stores' share) | other work just before, %% of all cores |\n")
		p("|---|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.idle {
			split := "-"
			if x.split.splits > 0 {
				split = fmt.Sprintf("%d in %.1f s (%.0f/s)", x.split.splits, x.split.elapsed.Seconds(), float64(x.split.splits)/x.split.elapsed.Seconds())
			}
			p("| %d | %s | %s of %d | %s | %s | %.1f | %.2f | %.1f (%.1f) | %.0f |\n", x.ranges, split,
				join(x.quiescedEnd, strconv.Itoa), x.ranges,
				join(x.cpuPct, func(v float64) string { return fmt.Sprintf("%.2f", v) }),
				join(x.batchesPS, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
				sum(x.batchesPS)/6, sum(x.msgsPS), x.machineBusy, x.ownPct, x.foreignBefore)
		}
		p("\n")
		for _, x := range r.idle {
			p("- %d ranges: quiescence reached after %.1f s of waiting (%s); leaders per store %v; Raft messages by type: %s.\n",
				x.ranges, x.quiesce.waited.Seconds(), quiesceWord(x.quiesce), x.leaders, fmtTypes(x.msgTypes))
			for i, rc := range x.counts {
				note := ""
				if rc.gauge != rc.listed {
					note = fmt.Sprintf(" — but its `rangekv_store_replicas` gauge says **%d**", rc.gauge)
				}
				p("  - store %d, ListRanges: %d replicas, %d initialized, %d quiescent, %d leaders%s.\n", i+1, rc.listed, rc.initialized, rc.quiescent, rc.leaders, note)
			}
			if x.detail != "" {
				p("  Not quiescent:\n\n```\n%s\n```\n", x.detail)
			}
		}
		if slices.ContainsFunc(r.idle, func(x idleResult) bool { return len(x.mem) > 0 }) {
			p("\n#### Memory after the idle window, and a store restart\n\n")
			p("| ranges | RSS MiB (s1 / s2 / s3) | RSS per replica KiB (s1 / s2 / s3) | Go heap in use MiB (s1 / s2 / s3) | restarted store | stop s | ready s | all listed s | every replica with a leader s | its CPU s until then | its RSS after, MiB |\n")
			p("|---|---|---|---|---|---|---|---|---|---|---|\n")
			for _, x := range r.idle {
				if len(x.mem) == 0 {
					continue
				}
				rs := "- | - | - | - | - | - | -"
				if rr := x.restart; rr != nil {
					serving := fmt.Sprintf("%.1f", rr.serving.Seconds())
					if rr.err != "" {
						serving = "**not reached**: " + rr.err
					}
					rs = fmt.Sprintf("%d | %.1f | %.1f | %.1f | %s | %.1f | %.0f", rr.store, rr.stop.Seconds(), rr.ready.Seconds(), rr.listed.Seconds(), serving, rr.cpu.Seconds(), float64(rr.rss)/(1<<20))
				}
				p("| %d | %s | %s | %s | %s |\n", x.ranges,
					join(x.mem, func(m memInfo) string { return fmt.Sprintf("%.0f", float64(m.rss)/(1<<20)) }),
					join(x.mem, func(m memInfo) string { return fmt.Sprintf("%.1f", m.perReplica()/1024) }),
					join(x.mem, func(m memInfo) string { return fmt.Sprintf("%.0f", float64(m.heap)/(1<<20)) }), rs)
			}
			p("\nListRanges, every replica paged (1,000 a page) three times after the idle window: ")
			for _, x := range r.idle {
				p("%d ranges: %s.", x.ranges, join(x.listing, func(l listCost) string {
					return fmt.Sprintf("%d replicas in %s wall, store CPU %s (%s per 1,000 replicas)", l.replicas, l.wall.Round(time.Millisecond), l.cpu, l.cpuPer1000())
				}))
			}
			p("\n\nRSS is VmRSS of each store process (`/proc/PID/status`) after the idle window, divided by the range count for \"per replica\" (so it includes the process's fixed cost); the heap is the Go runtime's HeapInuse. A restart sends SIGTERM to the store leading the fewest ranges, starts it again with the same flags and polls it every 250 ms: ready is `/readyz`, \"all listed\" is `Admin.ListRanges` listing every replica, and serving means every replica on it knows a leader.\n")
		}
		p("\nCPU is utime+stime of each store process from `/proc/PID/stat` over the window; batches are `rangekv_transport_batches_sent_total` (each store sends to 2 peers); Raft messages are `rangekv_raft_messages_sent_total` (quiesce heartbeats are not counted there). \"Machine busy\" is `/proc/stat` over the same window: the gap between it and the stores' share is other work on the machine.\n\n")
	}

	if len(r.writes) > 0 {
		p("#### Writes (%d writers, %d-byte values, keys uniform over r000000..r(N-1), one prefix per range of the layout; the one-range run uses the first layout's)\n\n", o.writes.writers, o.writes.valueSize)
		p("| layout | puts acknowledged | errors | time s | puts/s | p50 ms | p99 ms | p99.9 ms | max ms | log fsyncs (s1 / s2 / s3) | fsyncs per put (all stores) | entries per fsync | store CPU s (s1 / s2 / s3) | store CPU µs per put | machine busy, %% of all cores (other work; other work just before) | leaders before → after (s1 / s2 / s3) | leader changes seen |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, w := range r.writes {
			capped := ""
			if w.capped {
				capped = fmt.Sprintf(" (stopped by -write-max %s)", o.writes.maxTime)
			}
			p("| %s | %d%s | %d | %.1f | %.0f | %s | %s | %s | %s | %s | %.3f | %.1f | %s | %d | %.0f (%.0f; %.0f) | %s → %s | %.0f |\n", w.layout, w.ops, capped, w.errs,
				w.elapsed.Seconds(), w.throughput(), ms(w.p50), ms(w.p99), ms(w.p999), ms(w.maxLat),
				join(w.syncs, func(v float64) string { return fmt.Sprintf("%.0f", v) }),
				w.fsyncsPerWrite(), w.entriesPerSync(),
				join(w.storeCPU, func(v float64) string { return fmt.Sprintf("%.1f", v) }), w.cpuPerPut().Microseconds(),
				w.machineBusy, w.foreignPct, w.foreignBefore, join(w.leadersBefore, strconv.Itoa), join(w.leadersPerStore, strconv.Itoa), w.leaderChanges)
		}
		p("\n")
		for _, w := range r.writes {
			if w.firstErr != "" {
				p("- %s: first error: `%s`\n", w.layout, w.firstErr)
			}
			if w.rangesAfter != w.ranges {
				p("- %s: the stores host %d ranges after the run (automatic splits?)\n", w.layout, w.rangesAfter)
			}
		}
		p("Latency is measured by the client around `router.Client.Put` (one client per %d writers); warm-up puts (one per writer) are not counted. Fsyncs are `rangekv_raft_log_syncs_total` summed over the three stores (every put is appended on three replicas: 3.0 would mean one fsync per put per replica); entries are `rangekv_raft_entries_appended_total`, summed the same way. Store CPU is utime+stime of the three store processes over the run (this program, the client, is not included); \"other work\" is what `/proc/stat` shows busy beyond the stores and this program. Leader changes are `rangekv_raft_leader_changes_total` summed over the stores (each store counts what its replicas see, so one election shows up to three times).\n\n", writersPerClient)
	}

	if len(r.failovers) > 0 {
		p("#### Failover (kill -9 of the store leading every range)\n\n")
		p("| ranges | killed store | leaders moved there first | its replicas quiescent at kill | ranges with a new leader | first ms | p50 ms | p99 ms | all ms | all, in election timeouts | all per leader gauges, ms | ListRanges polls (mean / max ms) | puts after | other work just before, %% of all cores |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, f := range r.failovers {
			gauge := "not seen"
			if f.gaugeAll > 0 {
				gauge = ms(f.gaugeAll)
			}
			p("| %d | %d | %d | %d | %d of %d | %s | %s | %s | %s | %.2f | %s | %d (%s / %s) | %d of %d | %.0f |\n", f.ranges, f.killedStore, f.transferred,
				f.quiescentAtKill, f.led, f.ranges, ms(f.first), ms(f.p50), ms(f.p99), ms(f.all), float64(f.all)/float64(o.election),
				gauge, f.polls, ms(f.pollMean), ms(f.pollMax), f.postPutsOK, f.postPuts, f.foreignBefore)
		}
		p("\nTime runs from just before SIGKILL until the range's leader shows in `Admin.ListRanges` of a surviving store (polled every 20 ms on both at once, so a figure is late by up to one poll: see the poll times). \"All per leader gauges\" is a finer cross-check: the first time the survivors' `rangekv_store_leaders` gauges, scraped every 20 ms, add up to the range count. \"Puts after\": puts through `router.Client` to the two survivors once every range had a leader.\n")
		for _, f := range r.failovers {
			if f.postPutErr != "" {
				p("- first failed put after failover: `%s`\n", f.postPutErr)
			}
		}
		p("\n")
	}

	if len(r.splitLatency) > 0 {
		p("#### Split latency (splits one at a time through placement)\n\n")
		p("| key order | splits | time s | p50 ms | p99 ms | max ms | mean ms | other work just before, %% of all cores |\n")
		p("|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.splitLatency {
			p("| %s | %d | %.1f | %s | %s | %s | %s | %.0f |\n", x.order, x.splits, x.elapsed.Seconds(), ms(x.p50), ms(x.p99), ms(x.maxLat), ms(x.mean), x.foreignBefore)
		}
		p("\nA fresh cluster per order: 3 `rangekv-placement` members and 3 stores that join them (`--raft.profile %s`), range 1 replicated to three voters by placement before the first split. Each split is `router.Admin.Split` (what `rangekv range split` calls), timed by the client, retries included; keys r000001..r%06d. Ascending: each split cuts the right half the previous one created (a range whose leader was elected moments before); descending: the left half the previous one kept.\n\n", o.profile, o.splitLatency)
	}

	p("#### Goals\n\n")
	for _, x := range r.idle {
		p("- Idle CPU under %.0f%% of a core per store, %d ranges: %s (max %.2f%%).\n", o.cpuGoal, x.ranges, passMiss(x.maxCPU() < o.cpuGoal && x.quiesce.done), x.maxCPU())
		if !x.quiesce.done {
			p("  %d replicas never quiesced within %s.\n", x.quiesce.notQuiescent(), o.quiesceTimeout)
		}
	}
	if len(r.idle) >= 2 {
		a, z := r.idle[0], r.idle[len(r.idle)-1]
		ba, bz := sum(a.batchesPS), sum(z.batchesPS)
		ma, mz := sum(a.msgsPS), sum(z.msgsPS)
		// Independent: the larger layout's rates within 25% (plus 1/s of
		// slack for near-zero rates) of the smaller one's.
		ok := bz <= 1.25*ba+1 && mz <= 1.25*ma+1
		p("- Idle message rate independent of the range count (%d vs %d ranges; within 25%% + 1/s): %s — batches/s %.1f vs %.1f, Raft messages/s %.2f vs %.2f.\n",
			a.ranges, z.ranges, passMiss(ok), ba, bz, ma, mz)
	}
	if len(r.writes) >= 2 {
		var one, many *writeResult
		for i := range r.writes {
			if r.writes[i].ranges == 1 {
				one = &r.writes[i]
			} else {
				many = &r.writes[i]
			}
		}
		if one != nil && many != nil {
			p("- Writes over %d ranges vs one range: %.2fx the throughput, p99 %s vs %s ms, %.3f vs %.3f fsyncs per put (no goal set; recorded).\n",
				many.ranges, many.throughput()/one.throughput(), ms(many.p99), ms(one.p99), many.fsyncsPerWrite(), one.fsyncsPerWrite())
		}
	}
	if len(r.failovers) > 0 {
		met := 0
		var worst time.Duration
		var times []string
		for _, f := range r.failovers {
			if f.allLed && float64(f.all)/float64(o.election) < o.failoverGoal {
				met++
			}
			if !f.allLed {
				worst = max(worst, time.Hour)
				times = append(times, fmt.Sprintf("%d of %d ranges led", f.led, f.ranges))
				continue
			}
			worst = max(worst, f.all)
			times = append(times, fmt.Sprintf("%s ms", ms(f.all)))
		}
		p("- Failover under %.0f election timeouts (%s), %d ranges: %s — met in %d of %d runs (%s; worst %.2f election timeouts).\n", o.failoverGoal, o.election,
			r.failovers[0].ranges, passMiss(met == len(r.failovers)), met, len(r.failovers), strings.Join(times, ", "), float64(worst)/float64(o.election))
	}
	if len(r.splitLatency) > 0 {
		ok := true
		var parts []string
		for _, x := range r.splitLatency {
			ok = ok && x.p99 < o.splitGoal
			parts = append(parts, fmt.Sprintf("%s p99 %s ms", x.order, ms(x.p99)))
		}
		p("- Split latency p99 under %s in both key orders, %d splits each: %s (%s).\n", o.splitGoal, o.splitLatency, passMiss(ok && len(r.splitLatency) == 2), strings.Join(parts, ", "))
	}
	if r.crashes > 0 {
		p("- **%d store crash(es)** during this run; the affected measurements were run again in a fresh cluster (see the notes).\n", r.crashes)
	}
	for _, n := range r.notes {
		p("- Note: %s\n", n)
	}

	var profs []string
	for _, x := range r.idle {
		for _, s := range x.profiles {
			if s != "" {
				profs = append(profs, fmt.Sprintf("idle, %d ranges, %s", x.ranges, s))
			}
		}
	}
	for _, w := range r.writes {
		for _, s := range w.profiles {
			if s != "" {
				profs = append(profs, fmt.Sprintf("writes, %s, %s", w.layout, s))
			}
		}
	}
	if len(profs) > 0 {
		p("\n#### CPU profiles (%s each, `go tool pprof -top`)\n\n", o.pprofDur)
		for _, s := range profs {
			p("```\n%s\n```\n\n", s)
		}
	}
	return b.String()
}

func quiesceWord(q quiesceState) string {
	if q.done {
		return "all quiescent"
	}
	return fmt.Sprintf("%d replicas NOT quiescent at the deadline", q.notQuiescent())
}
