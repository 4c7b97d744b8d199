package dimutex

// The simulation's checker: the invariants, checked on one world's whole
// history, in true (bubble) time.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"strings"
	"time"
)

// simResult is a checked world.
type simResult struct {
	p          simParams
	violations []string
	stats      simStats
	digest     string // of the server's history: equal for equal runs
	trace      string // with DIMUTEX_SIM_TRACE=FROM-TO (seconds), the history in that window
	quick      bool   // drawn from the quick profile
}

// simStats are the figures of one or many worlds.
type simStats struct {
	seeds        int
	simulated    time.Duration
	acquisitions int
	handoffs     int
	takeovers    int // handoffs after a crash, bounded and checked
	losses       int // leases that reported ErrLost, all of them real
	notReleased  int // releases in time whose delete could not be confirmed before the deadline
	missedLosses int // an outside removal reported as a release: ambiguous by nature
	pastDeadline int // work that a pause carried past the lease's deadline: what the fencing token is for
	requests     int
	counts       map[string]int
}

func (s *simStats) add(o simStats) {
	s.seeds += o.seeds
	s.simulated += o.simulated
	s.acquisitions += o.acquisitions
	s.handoffs += o.handoffs
	s.takeovers += o.takeovers
	s.losses += o.losses
	s.notReleased += o.notReleased
	s.missedLosses += o.missedLosses
	s.pastDeadline += o.pastDeadline
	s.requests += o.requests
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	for k, v := range o.counts {
		s.counts[k] += v
	}
}

func (s *simStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d seeds, %.1f simulated hours, %d requests, %d acquisitions, %d handoffs (%d after a crash, bounded), %d losses (all real), %d releases left to expire, %d outside removals reported as releases, %d sections carried past their deadline by a pause\n",
		s.seeds, s.simulated.Hours(), s.requests, s.acquisitions, s.handoffs, s.takeovers, s.losses, s.notReleased, s.missedLosses, s.pastDeadline)
	keys := make([]string, 0, len(s.counts))
	for k := range s.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %d\n", k, s.counts[k])
	}
	return b.String()
}

// leaseTruth is what happened to a lease at the server.
type leaseTruth struct {
	owner      string // the process that wrote it
	object     string
	firstWrite time.Time
	lastWrite  time.Time
	removedBy  string // "": still there or expired; "self"; "client" (another process); "outside"
	removedAt  time.Time
}

// check waits for the world to go quiet and checks its history.
func check(w *simWorld) *simResult {
	// Let delayed requests land and crashed holders' leases run out.
	time.Sleep(2*w.p.ttl + 3*w.p.attempt)
	w.mu.Lock()
	defer w.mu.Unlock()
	h := &w.h
	for _, ho := range h.holdings {
		<-ho.done
		ho.finish()
	}
	r := &simResult{p: w.p}
	r.stats.seeds = 1
	r.stats.simulated = w.p.duration
	r.stats.counts = h.counts
	r.stats.requests = len(h.server)
	r.stats.acquisitions = len(h.holdings)
	bad := func(format string, args ...any) {
		r.violations = append(r.violations, fmt.Sprintf(format, args...))
	}

	truth := w.truths()
	r.digest = w.digest()
	if v := os.Getenv("DIMUTEX_SIM_TRACE"); v != "" {
		r.trace = w.trace(v)
	}

	// validEnd is when a holding stopped being valid: the Release call,
	// Done closing, its deadline, its crash, or an outside actor removing
	// its lock, whichever came first.
	validEnd := func(ho *holding) time.Time {
		end := ho.deadline
		for _, t := range []time.Time{ho.releaseAt, ho.doneAt, ho.crashAt} {
			if !t.IsZero() && t.Before(end) {
				end = t
			}
		}
		if tr := truth[ho.id]; tr != nil && tr.removedBy == "outside" && tr.removedAt.Before(end) {
			end = tr.removedAt
		}
		return end
	}

	// 1. Mutual exclusion: at most one valid holding at any moment (at
	// most the semaphore's size).
	limit := 1
	if w.p.slots > 0 {
		limit = w.p.slots
	}
	type edge struct {
		at    time.Time
		delta int
		ho    *holding
	}
	var edges []edge
	for _, ho := range h.holdings {
		end := validEnd(ho)
		if end.After(ho.start) {
			edges = append(edges, edge{ho.start, +1, ho}, edge{end, -1, ho})
		}
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // ends before starts: intervals are half-open
	})
	var holders []*holding
	for _, e := range edges {
		if e.delta < 0 {
			holders = slices.DeleteFunc(holders, func(x *holding) bool { return x == e.ho })
			continue
		}
		holders = append(holders, e.ho)
		if len(holders) > limit {
			var desc []string
			for _, x := range holders {
				desc = append(desc, fmt.Sprintf("%s token %d [%v, %v)", x.proc, x.token, x.start.Sub(w.start), validEnd(x).Sub(w.start)))
			}
			bad("mutual exclusion: %d valid holdings at %v, more than %d: %s", len(holders), e.at.Sub(w.start), limit, strings.Join(desc, "; "))
		}
	}

	// 2. Tokens strictly increase in acquisition order, per lock object.
	byObject := map[string][]*holding{}
	for _, ho := range h.holdings {
		byObject[ho.object] = append(byObject[ho.object], ho)
	}
	for obj, hs := range byObject {
		slices.SortFunc(hs, func(a, b *holding) int { return a.start.Compare(b.start) })
		for i := 1; i < len(hs); i++ {
			if hs[i].token <= hs[i-1].token {
				bad("tokens: %s acquired %s with token %d at %v after %s's token %d", hs[i].proc, obj, hs[i].token, hs[i].start.Sub(w.start), hs[i-1].proc, hs[i-1].token)
			}
			if hs[i].proc != hs[i-1].proc {
				r.stats.handoffs++
			}
		}
	}

	// 3. Bounded takeover: after a crash, in a calm world, a waiting
	// client holds the lock within TTL + 2 s + one poll interval of the
	// crashed holder's last write.
	if w.p.slots == 0 && !w.p.badDates && !w.p.writeLimit {
		bound := time.Duration(float64(w.p.ttl+2*time.Second)/w.p.serverRate) + w.p.minBack + 50*time.Millisecond
		hs := byObject[simLock]
		for i, ho := range hs {
			tr := truth[ho.id]
			if ho.crashAt.IsZero() || tr == nil || tr.removedBy == "outside" {
				continue
			}
			last := tr.lastWrite
			limitAt := last.Add(bound)
			if !w.calm(last, limitAt) || w.disturbed(last, limitAt) || !w.waiting(ho.proc, last, limitAt) {
				continue
			}
			var next *holding
			if i+1 < len(hs) {
				next = hs[i+1]
			}
			switch {
			case next == nil || next.start.After(limitAt):
				at := "never"
				if next != nil {
					at = next.start.Sub(last).String()
				}
				bad("bounded takeover: %s crashed holding token %d, last write at %v; the next holder came %s after it, bound %v", ho.proc, ho.token, last.Sub(w.start), at, bound)
			default:
				r.stats.takeovers++
			}
		}
	}

	// 4. No false loss, and a landed release is a release.
	for _, ho := range h.holdings {
		if !ho.crashAt.IsZero() {
			continue
		}
		tr := truth[ho.id]
		if tr == nil {
			bad("history: %s's lease (token %d) has no write at the server", ho.proc, ho.token)
			continue
		}
		inTime := !ho.releaseAt.IsZero() && ho.releaseAt.Before(ho.deadline)
		real := !inTime || tr.removedBy == "client" || tr.removedBy == "outside"
		reported := lostIn(ho)
		switch {
		case reported != "" && !real:
			bad("false loss: %s (token %d) reported %s, but its lease ended by its own release (removed by %q at %v; release called at %v, deadline %v)",
				ho.proc, ho.token, reported, tr.removedBy, tr.removedAt.Sub(w.start), ho.releaseAt.Sub(w.start), ho.deadline.Sub(w.start))
		case reported != "":
			r.stats.losses++
		}
		if tr.removedBy == "self" && inTime && !real {
			switch {
			case errors.Is(ho.err, ErrNotReleased):
				r.stats.notReleased++
			case !errors.Is(ho.err, ErrAlreadyReleased):
				bad("release: %s (token %d) deleted its lock, but the lease ended with %v", ho.proc, ho.token, ho.err)
			}
			for _, err := range []error{ho.releaseErr, ho.doErr} {
				if err != nil && !errors.Is(err, ErrAlreadyReleased) && !errors.Is(err, ErrNotReleased) {
					bad("release: %s (token %d) deleted its lock, but Release or Do returned %v", ho.proc, ho.token, err)
				}
			}
		}
		if tr.removedBy == "outside" && inTime && reported == "" && errors.Is(ho.err, ErrAlreadyReleased) {
			r.stats.missedLosses++
		}
		if !ho.releaseAt.IsZero() && ho.releaseAt.After(ho.deadline) && ho.paused {
			r.stats.pastDeadline++
		}
	}

	// 5. Quiet after the end: no request for a lease starts after it ended.
	ends := map[string]time.Time{}
	for _, ho := range h.holdings {
		ends[fmt.Sprintf("%s/%d", ho.proc, ho.token)] = ho.doneAt
	}
	for _, rq := range h.requests {
		end, ok := ends[fmt.Sprintf("%s/%d", rq.proc, rq.token)]
		if ok && rq.start.After(end) {
			bad("quiet after the end: %s sent a request for token %d at %v, after its lease ended at %v", rq.proc, rq.token, rq.start.Sub(w.start), end.Sub(w.start))
		}
	}

	// 6. Liveness: an Acquire that gave up did not wait while the lock
	// stood idle.
	if w.p.maxFaults <= 0.2 && w.p.maxPartition <= w.p.ttl {
		idle := w.idle(truth)
		gap := 2*w.p.maxBack + 3*w.p.attempt + 3*time.Second
		for _, a := range h.attempts {
			if a.err == nil || a.try || !errors.Is(a.err, context.DeadlineExceeded) {
				continue
			}
			for _, iv := range idle {
				from, to := maxTime(iv[0], a.start), minTime(iv[1], a.end)
				if to.Sub(from) > gap && !w.impaired(a.proc, from, to) {
					bad("liveness: %s waited from %v to %v and gave up, while the lock stood idle from %v to %v", a.proc, a.start.Sub(w.start), a.end.Sub(w.start), from.Sub(w.start), to.Sub(w.start))
					break
				}
			}
		}
	}
	return r
}

// digest summarises the server's history, in true time.
func (w *simWorld) digest() string {
	f := fnv.New64a()
	var dump *os.File
	if path := os.Getenv("DIMUTEX_SIM_DUMP"); path != "" {
		dump, _ = os.CreateTemp("", path)
		defer dump.Close()
	}
	for _, ev := range w.h.server {
		line := fmt.Sprintf("%d %s %s %s %d %t %d %d %s\n", ev.at.Sub(w.start), ev.who, ev.op, ev.object, ev.status, ev.applied, ev.gen, ev.match, ev.lease)
		f.Write([]byte(line))
		if dump != nil {
			dump.WriteString(line)
		}
	}
	return fmt.Sprintf("%d server events, %d holdings, hash %x", len(w.h.server), len(w.h.holdings), f.Sum64())
}

// trace renders the history between two times, "FROM-TO" in seconds from
// the start, for debugging a seed.
func (w *simWorld) trace(window string) string {
	var from, to float64
	fmt.Sscanf(window, "%f-%f", &from, &to)
	in := func(t time.Time) bool {
		s := t.Sub(w.start).Seconds()
		return s >= from && s <= to
	}
	type line struct {
		at time.Time
		s  string
	}
	var lines []line
	for _, ev := range w.h.server {
		if in(ev.at) {
			lines = append(lines, line{ev.at, fmt.Sprintf("server   %-6s %-6s %-8s match=%d -> %d applied=%t gen=%d lease=%.6s", ev.who, ev.op, ev.object, ev.match, ev.status, ev.applied, ev.gen, ev.lease)})
		}
	}
	for _, ev := range w.h.outside {
		if in(ev.at) {
			lines = append(lines, line{ev.at, fmt.Sprintf("outside  %s %s gen=%d", ev.kind, ev.object, ev.gen)})
		}
	}
	for _, ho := range w.h.holdings {
		for _, e := range []struct {
			t time.Time
			s string
		}{{ho.start, "acquired"}, {ho.releaseAt, "release called"}, {ho.doneAt, fmt.Sprintf("done (%v)", ho.err)}, {ho.crashAt, "crashed"}, {ho.deadline, "deadline"}} {
			if !e.t.IsZero() && in(e.t) {
				lines = append(lines, line{e.t, fmt.Sprintf("holding  %-6s token %d lease=%.6s %s", ho.proc, ho.token, ho.id, e.s)})
			}
		}
	}
	for _, a := range w.h.attempts {
		if in(a.start) || in(a.end) {
			lines = append(lines, line{a.start, fmt.Sprintf("attempt  %-6s try=%t do=%t until %v: %v", a.proc, a.try, a.do, a.end.Sub(w.start), a.err)})
		}
	}
	for proc, ivs := range w.h.impaired {
		for _, iv := range ivs {
			if in(iv[0]) {
				lines = append(lines, line{iv[0], fmt.Sprintf("impaired %-6s until %v", proc, iv[1].Sub(w.start))})
			}
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%12.6f %s\n", l.at.Sub(w.start).Seconds(), l.s)
	}
	return b.String()
}

// lostIn returns what of the holding's results reported ErrLost, if any.
func lostIn(ho *holding) string {
	switch {
	case errors.Is(ho.err, ErrLost):
		return "Err() = ErrLost"
	case errors.Is(ho.releaseErr, ErrLost):
		return "ErrLost from Release"
	case errors.Is(ho.doErr, ErrLost):
		return "ErrLost from Do"
	}
	for _, n := range ho.notes {
		if errors.Is(n.err, ErrLost) {
			return "ErrLost from " + n.op
		}
	}
	return ""
}

// truths replays the server's and the outside actors' history, per lock
// object, and says what happened to each lease.
func (w *simWorld) truths() map[string]*leaseTruth {
	type move struct {
		at      time.Time
		server  *serverEvent
		outside *outsideEvent
	}
	var moves []move
	for i := range w.h.server {
		if ev := &w.h.server[i]; ev.applied && (ev.op == "insert" || ev.op == "delete") {
			moves = append(moves, move{at: ev.at, server: ev})
		}
	}
	for i := range w.h.outside {
		if ev := &w.h.outside[i]; ev.object != "" {
			moves = append(moves, move{at: ev.at, outside: ev})
		}
	}
	slices.SortStableFunc(moves, func(a, b move) int { return a.at.Compare(b.at) })
	truth := map[string]*leaseTruth{}
	current := map[string]string{} // object -> lease id there now ("" if none or foreign)
	remove := func(object, by string, at time.Time) {
		if id := current[object]; id != "" && truth[id].removedBy == "" {
			truth[id].removedBy, truth[id].removedAt = by, at
		}
		current[object] = ""
	}
	for _, mv := range moves {
		if ev := mv.outside; ev != nil {
			remove(ev.object, "outside", ev.at)
			continue
		}
		ev := mv.server
		switch ev.op {
		case "insert":
			if id := current[ev.object]; id != "" && id != ev.lease {
				remove(ev.object, "client", ev.at)
			}
			current[ev.object] = ev.lease
			if ev.lease == "" {
				continue
			}
			tr := truth[ev.lease]
			if tr == nil {
				tr = &leaseTruth{owner: ev.who, object: ev.object, firstWrite: ev.at}
				truth[ev.lease] = tr
			}
			tr.lastWrite = ev.at
		case "delete":
			by := "client"
			if id := current[ev.object]; id != "" && truth[id].owner == ev.who {
				by = "self"
			}
			remove(ev.object, by, ev.at)
		}
	}
	return truth
}

// disturbed reports whether anything but the crash itself could delay a
// takeover in [from, to]: an outside actor or a jump of the server's clock.
func (w *simWorld) disturbed(from, to time.Time) bool {
	for _, ev := range w.h.outside {
		if !ev.at.Before(from.Add(-w.p.ttl)) && ev.at.Before(to) {
			return true
		}
	}
	return false
}

// waiting reports whether a process other than crashed was waiting in
// Acquire, unimpaired, throughout [from, to].
func (w *simWorld) waiting(crashed string, from, to time.Time) bool {
	for _, a := range w.h.attempts {
		// Waiting from before from, until to or until it acquired.
		if a.proc == crashed || a.try || a.start.After(from) || a.end.Before(from) || a.end.Before(to) && a.err != nil {
			continue
		}
		if !w.impaired(a.proc, from, to) {
			return true
		}
	}
	return false
}

// impaired reports whether the process was crashed, paused or partitioned
// at some time in [from, to].
func (w *simWorld) impaired(proc string, from, to time.Time) bool {
	for _, iv := range w.h.impaired[proc] {
		if iv[0].Before(to) && from.Before(iv[1]) {
			return true
		}
	}
	return false
}

// idle returns the intervals in which no lock object held a live lease
// (for a semaphore: fewer than all its slots did), could be written (under
// the write limit, not within a second of its delete) and no foreign
// object stood in the way.
func (w *simWorld) idle(truth map[string]*leaseTruth) [][2]time.Time {
	busy := map[string][][2]time.Time{}
	expiry := time.Duration(float64(w.p.ttl+2*time.Second) / w.p.serverRate)
	for _, tr := range truth {
		to := tr.lastWrite.Add(expiry)
		if tr.removedBy != "" && tr.removedAt.Before(to) {
			to = tr.removedAt
			if w.p.writeLimit {
				// Under GCS's write limit the delete was a write: nobody
				// can write the object for a second after it.
				to = to.Add(time.Second)
			}
		}
		busy[tr.object] = append(busy[tr.object], [2]time.Time{tr.firstWrite, to})
	}
	for i, ev := range w.h.outside {
		if !ev.foreign {
			continue
		}
		to := w.end
		for _, later := range w.h.outside[i+1:] {
			if later.object == ev.object && later.gen == ev.gen {
				to = later.at
				break
			}
		}
		busy[ev.object] = append(busy[ev.object], [2]time.Time{ev.at, to})
	}
	need := 1
	if w.p.slots > 0 {
		need = w.p.slots
	}
	// Sweep the count of busy objects.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, spans := range busy {
		for _, s := range mergeSpans(spans) {
			edges = append(edges, edge{s[0], +1}, edge{s[1], -1})
		}
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return b.delta - a.delta
	})
	var idle [][2]time.Time
	n, since := 0, w.start
	for _, e := range edges {
		before := n
		n += e.delta
		switch {
		case before < need && n >= need:
			idle = append(idle, [2]time.Time{since, e.at})
		case before >= need && n < need:
			since = e.at
		}
	}
	if n < need {
		idle = append(idle, [2]time.Time{since, w.end})
	}
	return idle
}

// mergeSpans merges the overlapping spans of one object.
func mergeSpans(spans [][2]time.Time) [][2]time.Time {
	slices.SortFunc(spans, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var out [][2]time.Time
	for _, s := range spans {
		if n := len(out); n > 0 && !s[0].After(out[n-1][1]) {
			out[n-1][1] = maxTime(out[n-1][1], s[1])
			continue
		}
		out = append(out, s)
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
