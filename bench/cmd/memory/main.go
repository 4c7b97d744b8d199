// Command memory measures what a held Lease costs in memory: the live heap
// (runtime.MemStats.HeapAlloc after runtime.GC) and goroutine stack
// (StackInuse) it adds, for one lease and for many leases on as many lock
// names, idle and while refreshing. The emulator runs in a child process so
// that its objects are not counted. It prints a markdown table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/bench/internal/emu"
)

func main() {
	emu.ServeIfChild()
	var (
		many       = flag.Int("leases", 1000, "leases in the many-lease scenarios")
		trials     = flag.Int("trials", 5, "repetitions of the one-lease scenarios (median reported)")
		sampleFor  = flag.Duration("sample", 8*time.Second, "how long to sample while refreshing")
		memprofile = flag.String("memprofile", "", "only write a heap profile, taken with the many idle leases held, to this file (sampling every allocation), and print no table")
	)
	flag.Parse()
	if *memprofile != "" {
		runtime.MemProfileRate = 1
	}
	srv, err := emu.StartChild()
	if err != nil {
		fatal(err)
	}
	defer srv.Stop()

	idle := []dimutex.Option{dimutex.WithTTL(10 * time.Minute)} // refreshes every 200 s: never during a measurement
	if *memprofile != "" {
		if _, err := measure(srv.URL, *many, idle, 0, *memprofile); err != nil {
			fatal(err)
		}
		return
	}

	fmt.Printf("Emulator in a child process; %s; the Mutexes use the default http.Client (http.DefaultTransport, one keep-alive connection, opened before the baseline). Leases are acquired one after another.\n\n", runtime.Version())
	fmt.Println("| scenario | leases | heap per lease | stack per lease, after GC | stack per lease, before the forced GC | goroutines per lease | heap per Mutex (before Acquire) | heap left after Release, per lease |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|--:|")

	type scenario struct {
		name   string
		n      int
		trials int
		opts   []dimutex.Option
		sample time.Duration
	}
	for _, sc := range []scenario{
		{"idle: TTL 10 min, so no refresh during the measurement", 1, *trials, idle, 0},
		{"idle: TTL 10 min, so no refresh during the measurement", *many, 1, idle, 0},
		{"refreshing: TTL 6 s, refresh every 1 s", 1, *trials,
			[]dimutex.Option{dimutex.WithTTL(6 * time.Second), dimutex.WithRefreshInterval(time.Second)}, *sampleFor},
		{fmt.Sprintf("refreshing: TTL 20 s, refresh every 5 s (%d writes/s)²", *many/5), *many, 1,
			[]dimutex.Option{dimutex.WithTTL(20 * time.Second), dimutex.WithRefreshInterval(5 * time.Second)}, *sampleFor},
	} {
		fmt.Fprintf(os.Stderr, "memory: %s, %d leases ...\n", sc.name, sc.n)
		var rs []result
		for range sc.trials {
			r, err := measure(srv.URL, sc.n, sc.opts, sc.sample, "")
			if errors.Is(err, dimutex.ErrLost) {
				// Say so, and measure once more: a loss is a timing failure
				// (the lease could not be refreshed in time), not a
				// measurement.
				fmt.Fprintln(os.Stderr, "memory: repeating a trial:", err)
				repeated = append(repeated, fmt.Sprintf("%s, %d leases: %v", sc.name, sc.n, err))
				r, err = measure(srv.URL, sc.n, sc.opts, sc.sample, "")
			}
			if err != nil {
				fatal(err)
			}
			rs = append(rs, r)
		}
		r := medianResult(rs)
		stack, stackPre := kib(r.stack), kib(r.stackPre)
		if sc.n < 100 {
			stack, stackPre = "n/a³", "n/a³"
		}
		fmt.Printf("| %s | %d | %s | %s | %s | %.2f | %s | %s |\n", sc.name, sc.n,
			kib(r.heap), stack, stackPre, r.goroutines, kib(r.mutex), kib(r.leftover))
	}
	fmt.Println()
	fmt.Printf("heap = HeapAlloc delta after runtime.GC; stack = StackInuse delta (after GC, and read just before it); both divided by the number of leases. GC shrinks the stack of a parked goroutine that uses little of it, so the two stack columns bracket what a lease's goroutine holds. Refreshing rows: the median of samples taken every 250 ms for %v after the last Acquire, so they include refreshes in flight; the before-GC stack column there is the largest sample. Results of the 1-lease rows are the median of %d trials.\n\n", *sampleFor, *trials)
	for _, r := range repeated {
		fmt.Printf("**A trial was repeated** because a lease was lost during it: %s.\n\n", r)
	}
	fmt.Println("² Not 1 s as for one lease: fake-gcs-server's memory backend scans every object in the bucket under one global lock on each write, so with 1,000 objects it cannot serve 1,000 writes/s; requests then queue past their attempt timeout and leases are lost. 200 writes/s it serves with room to spare.")
	fmt.Println()
	fmt.Println("³ A goroutine's stack comes from a per-P cache that the runtime refills 32 KiB at a time, so one lease moves StackInuse by 0 or 32 KiB; only the many-lease rows measure the stack.")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "memory:", err)
	os.Exit(1)
}

type result struct {
	heap, stack, stackPre, mutex, leftover float64 // bytes per lease
	goroutines                             float64
}

func medianResult(rs []result) result {
	med := func(f func(result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		if len(xs)%2 == 1 {
			return xs[len(xs)/2]
		}
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return result{
		heap:       med(func(r result) float64 { return r.heap }),
		stack:      med(func(r result) float64 { return r.stack }),
		stackPre:   med(func(r result) float64 { return r.stackPre }),
		mutex:      med(func(r result) float64 { return r.mutex }),
		leftover:   med(func(r result) float64 { return r.leftover }),
		goroutines: med(func(r result) float64 { return r.goroutines }),
	}
}

func kib(b float64) string {
	if b < 1024 && b > -1024 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.2f KiB", b/1024)
}

type snap struct {
	heap, stack, stackPre uint64
	goroutines            int
}

// snapshot reads the stack in use, then collects garbage twice and reads
// the live heap and the stack again.
func snapshot() snap {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	pre := m.StackInuse
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return snap{m.HeapAlloc, m.StackInuse, pre, runtime.NumGoroutine()}
}

var seq int

// repeated lists the trials that were measured again after a loss.
var repeated []string

// measure acquires n leases on n fresh lock names and returns what they
// cost per lease.
func measure(url string, n int, opts []dimutex.Option, sample time.Duration, memprofile string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seq++
	base := append([]dimutex.Option{dimutex.WithEndpoint(url)}, opts...)

	// Warm up: a first cycle opens the connection and initialises what the
	// package and net/http set up once.
	warm, err := dimutex.NewGCS(emu.Bucket, fmt.Sprintf("mem/%d/warm", seq), base...)
	if err != nil {
		return result{}, err
	}
	l, err := warm.Acquire(ctx)
	if err != nil {
		return result{}, err
	}
	if err := l.Release(ctx); err != nil {
		return result{}, err
	}

	s0 := snapshot()
	mutexes := make([]*dimutex.Mutex, n)
	for i := range mutexes {
		if mutexes[i], err = dimutex.NewGCS(emu.Bucket, fmt.Sprintf("mem/%d/lock-%05d", seq, i), base...); err != nil {
			return result{}, err
		}
	}
	s1 := snapshot()
	leases := make([]*dimutex.Lease, n)
	for i, m := range mutexes {
		if leases[i], err = m.Acquire(ctx); err != nil {
			return result{}, err
		}
	}
	var s2 snap
	if sample == 0 {
		s2 = snapshot()
		if memprofile != "" {
			f, err := os.Create(memprofile)
			if err != nil {
				return result{}, err
			}
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	} else {
		var heaps, stacks, pres []uint64
		var gs []int
		for end := time.Now().Add(sample); time.Now().Before(end); {
			time.Sleep(250 * time.Millisecond)
			s := snapshot()
			heaps, stacks, pres, gs = append(heaps, s.heap), append(stacks, s.stack), append(pres, s.stackPre), append(gs, s.goroutines)
		}
		slices.Sort(heaps)
		slices.Sort(stacks)
		slices.Sort(gs)
		s2 = snap{heaps[len(heaps)/2], stacks[len(stacks)/2], slices.Max(pres), gs[len(gs)/2]}
	}
	var lost error
	for i, l := range leases {
		wasLost := l.Err() != nil
		// After a loss, Release returns the reason.
		if err := l.Release(ctx); err != nil {
			if !wasLost {
				return result{}, err
			}
			if lost == nil {
				lost = fmt.Errorf("lease %d of %d ended during the measurement: %w", i+1, n, err)
			}
		}
	}
	if lost != nil {
		return result{}, lost
	}
	leases = nil
	s3 := snapshot()
	runtime.KeepAlive(mutexes)
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) }
	return result{
		heap:       per(s1.heap, s2.heap),
		stack:      per(s1.stack, s2.stack),
		stackPre:   per(s1.stack, s2.stackPre),
		goroutines: float64(s2.goroutines-s1.goroutines) / float64(n),
		mutex:      per(s0.heap, s1.heap),
		leftover:   per(s1.heap, s3.heap),
	}, nil
}
