package figures_test

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
)

// Requests per acquire: one client acquires a slot of a semaphore of N
// slots, of which others hold none, half, or all but one. Target: 2
// requests (a list and an insert), whatever N.
func TestSemaphoreRequestsPerAcquire(t *testing.T) {
	var table strings.Builder
	fmt.Fprintln(&table, "| size N | slots held by others | requests to acquire | of which lists | of which inserts | bytes received (both answers) | requests to release |")
	fmt.Fprintln(&table, "|--:|--:|--:|--:|--:|--:|--:|")
	for _, n := range []int{1, 10, 100, 1000} {
		for _, held := range slices.Compact([]int{0, n / 2, n - 1}) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, uint64(n*10000+held))
				for _, i := range mrand.New(mrand.NewPCG(uint64(n), uint64(held))).Perm(n)[:held] {
					w.putSlot("pool", i, n)
				}
				s, err := dimutex.NewSemaphore(bucket, "pool", n, w.options("acquirer")...)
				if err != nil {
					t.Fatal(err)
				}
				l, err := s.Acquire(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				acq := w.snapshot("acquirer")
				if err := l.Release(context.Background()); err != nil {
					t.Fatal(err)
				}
				all := w.snapshot("acquirer")
				reqs := acq.gets + acq.lists + acq.inserts + acq.deletes
				if reqs != 2 || acq.lists != 1 || acq.inserts != 1 {
					t.Errorf("N = %d, %d held: %d requests to acquire (%d lists, %d inserts), want 2: a list and an insert", n, held, reqs, acq.lists, acq.inserts)
				}
				rel := all.gets + all.lists + all.inserts + all.deletes - reqs
				if rel != 1 {
					t.Errorf("N = %d: %d requests to release, want 1", n, rel)
				}
				fmt.Fprintf(&table, "| %d | %d | %d | %d | %d | %d | %d |\n", n, held, reqs, acq.lists, acq.inserts, acq.bytes, rel)
			})
		}
	}
	t.Logf("Requests per acquire, per N (dimutextest in memory; the held slots are live leases of other clients):\n\n%s", table.String())
}

// holderLog records when clients start and stop holding a slot: from
// Acquire's return to just before Release is called.
type holderLog struct {
	mu     sync.Mutex
	events []holderEvent
}

type holderEvent struct {
	at    time.Time
	delta int
}

func (h *holderLog) change(delta int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, holderEvent{time.Now(), delta})
}

// holderStats sums up a holderLog: the most holders at any moment of the
// whole run, and, over the window [from, to), the share of time spent with
// each number of holders and, per period, the most and the time-weighted
// mean.
type holderStats struct {
	most    int
	share   map[int]time.Duration
	periods []holderPeriod
}

type holderPeriod struct {
	most     int
	weighted time.Duration // holders × time
}

func (h *holderLog) stats(from, to time.Time, period time.Duration) holderStats {
	h.mu.Lock()
	events := slices.Clone(h.events)
	h.mu.Unlock()
	// At one instant, an end counts before a start: a holding ends before
	// its Release is called, and no acquisition can follow within the
	// same instant, since the release's request takes time.
	slices.SortStableFunc(events, func(a, b holderEvent) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	st := holderStats{share: map[int]time.Duration{}, periods: make([]holderPeriod, int((to.Sub(from)+period-1)/period))}
	n := 0
	// charge adds the time [a, b) at n holders to the window's figures.
	charge := func(a, b time.Time) {
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		for a.Before(b) {
			i := int(a.Sub(from) / period)
			end := from.Add(time.Duration(i+1) * period)
			if end.After(b) {
				end = b
			}
			st.share[n] += end.Sub(a)
			st.periods[i].weighted += time.Duration(n) * end.Sub(a)
			st.periods[i].most = max(st.periods[i].most, n)
			a = end
		}
	}
	last := from
	for _, e := range events {
		if e.at.After(last) {
			charge(last, e.at)
			last = e.at
		}
		n += e.delta
		st.most = max(st.most, n)
	}
	charge(last, to)
	return st
}

// Contention: 12 clients share a semaphore of 3 slots, each holding a slot
// for 200 ms, releasing it and acquiring again at once, for 10 virtual
// minutes (library defaults: TTL 60 s, backoff 100 ms to 5 s). It reports
// how many hold a slot over time, which must never exceed 3, acquisitions
// per second, and the requests per acquisition. It runs without and with
// GCS's write rate limit (dimutextest.WithWriteRateLimit).
func TestSemaphoreContention(t *testing.T) {
	const size, clients = 3, 12
	const hold = 200 * time.Millisecond
	const warmup, window = 10 * time.Second, 10 * time.Minute
	var table, overTime strings.Builder
	fmt.Fprintln(&table, "| write rate limit | acquisitions/s | most holders | time with 0 / 1 / 2 / 3 holders | wait in Acquire: median / p90 / max | lists per acquisition | inserts per acquisition (of which 412, 429) | deletes per acquisition (of which 429) | requests per acquisition | acquisitions per client, min–max | accepted writes/s per slot object: mean / max (most in any 1 s) | attempted writes/s per slot object: mean / max |")
	fmt.Fprintln(&table, "|---|--:|--:|---|---|--:|---|---|--:|---|---|---|")
	for _, limited := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			var opts []dimutextest.Option
			if limited {
				opts = append(opts, dimutextest.WithWriteRateLimit())
			}
			w := newWorld(t, 3, opts...)
			ctx, cancel := context.WithCancel(context.Background())
			start := time.Now()
			from, to := start.Add(warmup), start.Add(warmup+window)
			var h holderLog
			var mu sync.Mutex
			acquired := make([]int, clients) // in the window
			var waits []time.Duration        // of the acquisitions in the window
			var wg sync.WaitGroup
			for c := range clients {
				s, err := dimutex.NewSemaphore(bucket, "pool", size, w.options(fmt.Sprint("client-", c))...)
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					for ctx.Err() == nil {
						asked := time.Now()
						l, err := s.Acquire(ctx)
						if err != nil {
							return
						}
						h.change(+1)
						if now := time.Now(); now.After(from) && now.Before(to) {
							mu.Lock()
							acquired[c]++
							waits = append(waits, now.Sub(asked))
							mu.Unlock()
						}
						time.Sleep(hold)
						h.change(-1)
						if err := l.Release(context.Background()); err != nil {
							t.Errorf("client %d: Release: %v", c, err)
						}
					}
				})
			}
			time.Sleep(warmup)
			before := w.snapshot("client-")
			time.Sleep(window)
			after := w.snapshot("client-")
			cancel()
			wg.Wait()
			st := h.stats(from, to, time.Minute)

			total := 0
			for _, n := range acquired {
				total += n
			}
			if st.most > size {
				t.Errorf("%d holders at once, of a semaphore of %d", st.most, size)
			}
			d := counts{}
			d.add(&after)
			d.gets -= before.gets
			d.lists -= before.lists
			d.inserts -= before.inserts
			d.insert412 -= before.insert412
			d.insert429 -= before.insert429
			d.deletes -= before.deletes
			d.delete429 -= before.delete429
			per := func(n int) string { return fmt.Sprintf("%.2f", float64(n)/float64(total)) }
			var shares []string
			for k := range size + 1 {
				shares = append(shares, fmt.Sprintf("%.1f %%", 100*st.share[k].Seconds()/window.Seconds()))
			}
			label := map[bool]string{false: "none", true: "1 write/s per object"}[limited]
			slices.Sort(waits)
			wr := w.writeRates("pool/slot-", from, to)
			fmt.Fprintf(&table, "| %s | %.2f | %d | %s | %s / %s / %s | %s | %s (%s, %s) | %s (%s) | %s | %d–%d | %.2f / %.2f (%d) | %.2f / %.2f |\n", label,
				float64(total)/window.Seconds(), st.most, strings.Join(shares, " / "),
				fmtDur(medianOf(waits)), fmtDur(waits[len(waits)*9/10]), fmtDur(waits[len(waits)-1]),
				per(d.lists), per(d.inserts), per(d.insert412), per(d.insert429), per(d.deletes), per(d.delete429),
				per(d.gets+d.lists+d.inserts+d.deletes), slices.Min(acquired), slices.Max(acquired),
				wr.acceptedMean, wr.acceptedMax, wr.peakAcceptedPerSecond, wr.attemptedMean, wr.attemptedMax)
			fmt.Fprintf(&overTime, "\n%s, per minute of the window: most holders / mean holders:", label)
			for i, b := range st.periods {
				fmt.Fprintf(&overTime, " %d: %d / %.2f;", i+1, b.most, float64(b.weighted)/float64(time.Minute))
			}
			if d.gets != 0 {
				t.Errorf("%d object reads: a semaphore should only list", d.gets)
			}
		})
	}
	t.Logf("Contention: %d clients, a semaphore of %d, each holding %v then acquiring again at once; %v of virtual time after %v of warm-up; a round trip of 20–60 ms:\n\n%s%s",
		clients, size, hold, window, warmup, table.String(), overTime.String())
}

// The write budget: under GCS's limit of one write per second per object
// (dimutextest.WithWriteRateLimit), a handoff of a slot costs two writes on
// it, the release and the next acquire, so a semaphore of N slots sustains
// about N/2 handoffs per second. 2N + 2 clients contend, holding 100 ms or
// 1 s, for 5 virtual minutes; the table gives the handoffs per second
// measured, against N/2.
func TestSemaphoreWriteBudget(t *testing.T) {
	const warmup, window = 20 * time.Second, 5 * time.Minute
	var table strings.Builder
	fmt.Fprintln(&table, "| size N | clients | hold | handoffs/s | N/2 | ÷ N/2 | accepted writes/s per slot object: mean / max (most in any 1 s) | attempted writes/s per slot object: mean / max | releases answered 429, share | acquiring inserts answered 429, share | lists per handoff | leases lost |")
	fmt.Fprintln(&table, "|--:|--:|--:|--:|--:|--:|---|---|--:|--:|--:|--:|")
	for _, size := range []int{1, 4, 16} {
		for _, hold := range []time.Duration{100 * time.Millisecond, time.Second} {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, uint64(size)*7+uint64(hold), dimutextest.WithWriteRateLimit())
				ctx, cancel := context.WithCancel(context.Background())
				clients := 2*size + 2
				start := time.Now()
				from, to := start.Add(warmup), start.Add(warmup+window)
				var mu sync.Mutex
				var handoffs, lost int
				var wg sync.WaitGroup
				for c := range clients {
					s, err := dimutex.NewSemaphore(bucket, "pool", size, w.options(fmt.Sprint("client-", c))...)
					if err != nil {
						t.Fatal(err)
					}
					wg.Go(func() {
						for ctx.Err() == nil {
							l, err := s.Acquire(ctx)
							if err != nil {
								return
							}
							if now := time.Now(); now.After(from) && now.Before(to) {
								mu.Lock()
								handoffs++
								mu.Unlock()
							}
							time.Sleep(hold)
							if err := l.Release(context.Background()); err != nil {
								mu.Lock()
								lost++
								mu.Unlock()
							}
						}
					})
				}
				time.Sleep(warmup)
				before := w.snapshot("client-")
				time.Sleep(window)
				after := w.snapshot("client-")
				cancel()
				wg.Wait()
				rate := float64(handoffs) / window.Seconds()
				rule := float64(size) / 2
				if rate > rule*1.05 {
					t.Errorf("N = %d: %.2f handoffs/s, above the N/2 = %.1f that the write limit allows", size, rate, rule)
				}
				deletes, del429 := after.deletes-before.deletes, after.delete429-before.delete429
				inserts, ins429 := after.inserts-before.inserts, after.insert429-before.insert429
				pct := func(a, b int) string {
					if b == 0 {
						return "–"
					}
					return fmt.Sprintf("%.0f %%", 100*float64(a)/float64(b))
				}
				wr := w.writeRates("pool/slot-", from, to)
				if wr.peakAcceptedPerSecond > 1 {
					t.Errorf("N = %d: %d accepted writes of one slot object within a second", size, wr.peakAcceptedPerSecond)
				}
				fmt.Fprintf(&table, "| %d | %d | %v | %.2f | %.1f | %.2f | %.2f / %.2f (%d) | %.2f / %.2f | %s | %s | %.1f | %d |\n", size, clients, hold, rate, rule, rate/rule,
					wr.acceptedMean, wr.acceptedMax, wr.peakAcceptedPerSecond, wr.attemptedMean, wr.attemptedMax,
					pct(del429, deletes), pct(ins429, inserts), float64(after.lists-before.lists)/float64(max(handoffs, 1)), lost)
			})
		}
	}
	t.Logf("The write budget: a semaphore of N slots under 1 write/s per object; %v of virtual time after %v of warm-up; a round trip of 20–60 ms:\n\n%s",
		window, warmup, table.String())
}
