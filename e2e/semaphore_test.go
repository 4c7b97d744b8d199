package e2e_test

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// Eight processes share a semaphore of three slots, each holding a slot for
// about 300 ms at a time, while the test kills a holder (SIGKILL, then a
// restart) every one and a half to three seconds. Every holder logs, while
// it holds, that its lease is still valid (see lockworker's semaphore.go).
// Then: never more than three valid holders at once, no two on one slot,
// tokens increase from holder to holder of each slot, and every crashed
// slot is taken over. How soon is logged against TTL + 2 s + one poll
// interval, not asserted (see chaosBound).
func TestSemaphoreProcesses(t *testing.T) {
	t.Parallel()
	bin := buildLockworker(t)
	backend.Each(t, func(t *testing.T, b *backend.Backend) { testSemaphoreChaos(t, b, bin) })
}

func testSemaphoreChaos(t *testing.T, b *backend.Backend, bin string) {
	const procs, size = 8, 3
	srv := b.Start(t)
	out := filepath.Join(t.TempDir(), "holders.jsonl")
	f := newFleet(t, bin, procs, func(i int) []string {
		return workerArgs(srv.URL, srv.Bucket, "pool", "-mode=semaphore", "-size", strconv.Itoa(size), "-id", strconv.Itoa(i),
			"-ttl", chaosTTL.String(), "-hold", "300ms", "-backoff-min", "50ms", "-backoff-max", chaosPoll.String(), "-out", out)
	})
	type hold struct {
		slot  string
		token int64
	}
	holding := map[int]hold{} // worker: the slot it holds, as its stdout says
	type crash struct {
		worker int
		hold
		at        time.Time
		takenOver bool // someone acquired the slot since, as its stdout says
	}
	var crashes []crash
	handle := func(e fleetEvent) {
		fields := strings.Fields(e.line)
		switch {
		case e.line == "":
			f.unexpectedExit(e)
		case fields[0] == "acquired" && len(fields) == 3:
			token, _ := strconv.ParseInt(fields[2], 10, 64)
			holding[e.worker] = hold{fields[1], token}
			for i := range crashes {
				if crashes[i].slot == fields[1] && crashes[i].token < token {
					crashes[i].takenOver = true
				}
			}
		case fields[0] == "released" || fields[0] == "lost":
			delete(holding, e.worker)
		}
	}
	await := func(d time.Duration) {
		timeout := time.After(d)
		for {
			select {
			case e := <-f.events:
				handle(e)
			case <-timeout:
				return
			}
		}
	}

	end := time.Now().Add(chaosRun())
	// The last crash leaves time for its slot to be taken over.
	for lastCrash := end.Add(-chaosBound - time.Second); time.Now().Before(lastCrash) || len(crashes) == 0 && time.Now().Before(end.Add(time.Minute)); {
		await(1500*time.Millisecond + rand.N(1500*time.Millisecond))
		var holders []int
		for w := range holding {
			holders = append(holders, w)
		}
		if len(holders) == 0 {
			continue
		}
		slices.Sort(holders)
		w := holders[rand.N(len(holders))]
		crashes = append(crashes, crash{worker: w, hold: holding[w], at: f.kill(w)})
		delete(holding, w)
		f.restart(w)
	}
	// Wait until every crashed slot has been taken over, for
	// chaosLiveness at most.
	takenOver := func() bool {
		for _, c := range crashes {
			if !c.takenOver {
				return false
			}
		}
		return true
	}
	await(time.Until(end))
	for limit := time.Now().Add(chaosLiveness); !takenOver() && time.Now().Before(limit); {
		await(100 * time.Millisecond)
	}
	f.stopAll()

	vs := readValidity(t, out)
	// Never more than size valid holders: sweep the holdings' starts and
	// ends in time order.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	bySlot := map[string][]validity{}
	for _, v := range vs {
		edges = append(edges, edge{v.start, +1}, edge{v.end, -1})
		bySlot[v.slot] = append(bySlot[v.slot], v)
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return b.delta - a.delta // a start at the very instant of an end counts as overlapping
	})
	most, n := 0, 0
	for _, e := range edges {
		n += e.delta
		if n > most {
			most = n
		}
		if n > size {
			t.Errorf("%d valid holders at %s, of a semaphore of %d", n, e.at.Format("15:04:05.000000"), size)
		}
	}
	for _, slot := range slices.Sorted(func(yield func(string) bool) {
		for s := range bySlot {
			if !yield(s) {
				return
			}
		}
	}) {
		checkExclusive(t, slot, bySlot[slot]) // sorted by start, as vs is
	}
	if len(bySlot) > size {
		t.Errorf("holdings on %d slots, of a semaphore of %d", len(bySlot), size)
	}
	// Every crashed holder's slot is taken over.
	var takeovers []time.Duration
	late := 0
	for _, c := range crashes {
		var next *validity
		for i := range bySlot[c.slot] {
			if v := &bySlot[c.slot][i]; v.token > c.token && v.start.After(c.at) {
				next = v
				break
			}
		}
		if next == nil {
			t.Errorf("%s was not taken over after its holder (worker %d, token %d) crashed", c.slot, c.worker, c.token)
			continue
		}
		took := next.start.Sub(c.at)
		takeovers = append(takeovers, took)
		if took > chaosBound {
			late++
		}
	}
	if len(crashes) == 0 {
		t.Error("no holder was crashed: the run was too short")
	}
	t.Logf("%d processes on %d slots, TTL %v, %v: %d holdings on %d slots, at most %d valid at once; %d crashes, each slot taken over in %s (protocol bound %v, exceeded %d times: scheduling)",
		procs, size, chaosTTL, chaosRun(), len(vs), len(bySlot), most, len(crashes), spread(takeovers), chaosBound, late)
}
