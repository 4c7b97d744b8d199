package figures_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
)

// The election's cost at steady state: one leader, two followers waiting in
// Campaign and four observers running Observe, for an hour of virtual time
// after two minutes of settling, with the library's defaults (TTL 60 s,
// refresh every TTL/3, backoff 100 ms to 5 s), with TTL 15 s (client-go's
// lease duration), and with TTL 2 s. Requests are counted per client and
// reported per hour, beside client-go's leaderelection with its defaults
// (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s), computed from
// its source: the leader updates the Lease every 2 s, and each follower
// GETs it every 2 s to 4.4 s. Followers and observers must send no write.
func TestElectionCost(t *testing.T) {
	const followers, observers = 2, 4
	const settle, window = 2 * time.Minute, time.Hour
	var table strings.Builder
	fmt.Fprintln(&table, "| configuration | leader writes/h | leader reads/h | follower reads/h (each) | follower writes | observer reads/h (each) | observer writes |")
	fmt.Fprintln(&table, "|---|--:|--:|--:|--:|--:|--:|")
	// client-go, computed (not run) from tools/leaderelection: the leader
	// renews with one Update per RetryPeriod (wait.Until; the optimistic
	// fast path sends no Get), a follower Gets once per RetryPeriod ×
	// (1 + U[0, 1.2]) (wait.JitterUntil, JitterFactor 1.2): 3.2 s on average.
	fmt.Fprintln(&table, "| client-go leaderelection, defaults LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s (computed, not run) | 1800 | 0 | 1125 (1800 at most) | 0 | – | – |")
	for _, c := range []struct {
		label string
		opts  []dimutex.Option
		ttl   time.Duration
	}{
		{"dimutex defaults: TTL 60 s, refresh every 20 s, backoff 100 ms–5 s", nil, dimutex.DefaultTTL},
		{"dimutex TTL 15 s (refresh every 5 s), backoff 100 ms–5 s", []dimutex.Option{dimutex.WithTTL(15 * time.Second)}, 15 * time.Second},
		{"dimutex TTL 2 s (refresh every 667 ms), backoff 100 ms–5 s", []dimutex.Option{dimutex.WithTTL(2 * time.Second)}, 2 * time.Second},
	} {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, uint64(c.ttl))
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			leader, err := dimutex.NewElection(bucket, "leader", w.options("leader", c.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			lease, err := leader.Campaign(ctx, "v")
			if err != nil {
				t.Fatal(err)
			}
			for i := range followers {
				e, err := dimutex.NewElection(bucket, "leader", w.options(fmt.Sprint("follower-", i), c.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					if l, err := e.Campaign(ctx, ""); err == nil {
						t.Errorf("follower %d leads (token %d) while the leader's lease is live", i, l.Token())
					}
				})
			}
			for i := range observers {
				e, err := dimutex.NewElection(bucket, "leader", w.options(fmt.Sprint("observer-", i), c.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					for range e.Observe(ctx) {
					}
				})
			}
			time.Sleep(settle)
			l0, f0, o0 := w.snapshot("leader"), w.snapshot("follower-"), w.snapshot("observer-")
			time.Sleep(window)
			l1, f1, o1 := w.snapshot("leader"), w.snapshot("follower-"), w.snapshot("observer-")
			if lease.Err() != nil {
				t.Fatalf("the leader lost its lease: %v", lease.Err())
			}
			cancel()
			wg.Wait()
			lease.Release(context.Background())
			reads := func(a, b counts) int { return b.gets + b.lists - a.gets - a.lists }
			fw, ow := f1.writes()-f0.writes(), o1.writes()-o0.writes()
			if fw != 0 || ow != 0 {
				t.Errorf("%s: followers sent %d writes and observers %d, want 0", c.label, fw, ow)
			}
			// The leader refreshes every TTL/3: 3 × 3600 s / TTL writes an hour.
			want := 3 * float64(time.Hour) / float64(c.ttl)
			if got := perHour(l1.writes()-l0.writes(), window); got < want-1 || got > want+1 {
				t.Errorf("%s: the leader wrote %.0f times an hour, want %.0f", c.label, got, want)
			}
			fmt.Fprintf(&table, "| %s | %.0f | %.0f | %.0f | %d | %.0f | %d |\n", c.label,
				perHour(l1.writes()-l0.writes(), window), perHour(reads(l0, l1), window),
				perHour(reads(f0, f1), window)/followers, fw, perHour(reads(o0, o1), window)/observers, ow)
		})
	}
	t.Logf("The election at steady state: 1 leader, %d followers in Campaign, %d observers in Observe; %v of virtual time after %v; a round trip of 20–60 ms:\n\n%s",
		followers, observers, window, settle, table.String())
}
