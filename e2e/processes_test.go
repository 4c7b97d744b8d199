package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/e2e/internal/faultproxy"
)

// soak reports whether the long versions of the multi-process tests should
// run (DIMUTEX_SOAK=1); by default they run shorter, for CI.
func soak() bool { return os.Getenv("DIMUTEX_SOAK") == "1" }

// Each test here runs lockworker processes: separate OS processes on one
// lock, which the test crashes and pauses.
func TestProcesses(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "lockworker")
	build := exec.Command("go", "build", "-o", bin, "./internal/lockworker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building lockworker: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		test func(*testing.T, *backend.Backend, string)
	}{
		{"many", testManyProcesses}, {"crash", testCrash}, {"pause", testPause},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			backend.Each(t, func(t *testing.T, b *backend.Backend) { tc.test(t, b, bin) })
		})
	}
}

// worker is one running lockworker.
type worker struct {
	cmd    *exec.Cmd
	lines  chan string // its stdout, line by line
	stderr *lockedBuffer
}

func startWorker(t *testing.T, bin string, args ...string) *worker {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{cmd: cmd, lines: make(chan string, 16), stderr: &lockedBuffer{}}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return w
}

// await returns the worker's next stdout line, which must start with prefix.
func (w *worker) await(t *testing.T, prefix string, within time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-w.lines:
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("worker said %q (open: %v), want %q...\nstderr tail:\n%s", line, ok, prefix, w.stderr.tail(20))
		}
		return line
	case <-time.After(within):
		t.Fatalf("worker did not say %q within %v\nstderr tail:\n%s", prefix, within, w.stderr.tail(20))
	}
	return ""
}

func workerArgs(endpoint, bucket, name string, extra ...string) []string {
	return append([]string{"-endpoint", endpoint, "-bucket", bucket, "-name", name}, extra...)
}

// addFaults makes the proxy fault a fraction of all requests, spread evenly
// over every kind of fault.
func addFaults(p *faultproxy.Proxy, fraction float64) {
	kinds := []faultproxy.Rule{
		{Fault: faultproxy.Status503}, {Fault: faultproxy.Status500}, {Fault: faultproxy.Status429},
		{Fault: faultproxy.Status408}, {Fault: faultproxy.ResetBefore}, {Fault: faultproxy.ResetAfter},
		{Fault: faultproxy.Truncate}, {Fault: faultproxy.Latency, Delay: 700 * time.Millisecond},
	}
	share := fraction / float64(len(kinds))
	for i, r := range kinds {
		// Rules are tried in order; scale so that each kind gets its share.
		r.Probability = share / (1 - float64(i)*share)
		p.Add(r)
	}
}

// Eight processes run critical sections on one lock through a proxy that
// faults a fifth of all requests. No two sections overlap, tokens increase
// from hold to hold, and every process finishes.
func testManyProcesses(t *testing.T, b *backend.Backend, bin string) {
	procs, sections := 8, 4
	if soak() {
		sections = 50
	}
	f := newFaultyEnv(t, b, 42)
	addFaults(f.proxy, 0.20)
	out := filepath.Join(t.TempDir(), "sections.jsonl")
	start := time.Now()
	workers := make([]*worker, procs)
	for i := range workers {
		workers[i] = startWorker(t, bin, workerArgs(f.front.URL, f.srv.Bucket, "soak",
			"-mode=sections", "-id", strconv.Itoa(i), "-sections", strconv.Itoa(sections), "-ttl=2s", "-out", out)...)
	}
	for i, w := range workers {
		if err := w.cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, w.stderr.tail(20))
		}
	}
	elapsed := time.Since(start)

	secs, losses := readSections(t, out)
	if len(secs) != procs*sections {
		t.Fatalf("%d sections recorded, want %d", len(secs), procs*sections)
	}
	slices.SortFunc(secs, func(a, b section) int { return int(a.Start - b.Start) })
	var overlaps, decreases int
	for i := 1; i < len(secs); i++ {
		prev, cur := secs[i-1], secs[i]
		if cur.Start < prev.End {
			overlaps++
			t.Errorf("sections overlap: %+v and %+v", prev, cur)
		}
		if cur.Token <= prev.Token {
			decreases++
			t.Errorf("token did not increase: %+v then %+v", prev, cur)
		}
	}
	st := f.proxy.Stats()
	var faults []string
	for k, n := range st.Faults {
		faults = append(faults, fmt.Sprintf("%v=%d", k, n))
	}
	slices.Sort(faults)
	var early []string
	for _, l := range losses {
		early = append(early, time.Duration(l.Deadline-l.LostAt).Round(time.Millisecond).String())
	}
	t.Logf("%d processes × %d sections in %v: %d requests (%v), %d faults injected (%s); "+
		"%d sections completed, %d overlaps, %d token decreases; %d losses signalled, before the deadline by %v; Authorization headers seen: %d",
		procs, sections, elapsed.Round(time.Millisecond), st.Requests, st.ByMethod, st.FaultsTotal(), strings.Join(faults, " "),
		len(secs), overlaps, decreases, len(losses), early, st.Authorized)
	if st.FaultsTotal() == 0 {
		t.Error("no faults were injected")
	}
	if st.Authorized != 0 {
		t.Errorf("%d requests carried an Authorization header to the emulator", st.Authorized)
	}
}

type section struct {
	Worker int   `json:"worker"`
	Token  int64 `json:"token"`
	Start  int64 `json:"start"`
	End    int64 `json:"end"`
	Loss   *struct {
		LostAt   int64 `json:"lost_at"`
		Deadline int64 `json:"deadline"`
	} `json:"loss"`
}

type loss struct{ LostAt, Deadline int64 }

func readSections(t *testing.T, path string) (secs []section, losses []loss) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var s section
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("bad record %q: %v", line, err)
		}
		if s.Loss != nil {
			losses = append(losses, loss{s.Loss.LostAt, s.Loss.Deadline})
			continue
		}
		secs = append(secs, s)
	}
	return secs, losses
}

// A holder killed with SIGKILL in mid-section is taken over by another
// process once its TTL has passed by the server's clock.
func testCrash(t *testing.T, b *backend.Backend, bin string) {
	const ttl = 2 * time.Second
	runs := 1
	if soak() {
		runs = 10
	}
	e := newEnv(t, b)
	var took []time.Duration
	for i := range runs {
		name := fmt.Sprint("crash-", i)
		// Start at a random point of the server's second, whose Date
		// counts whole seconds, for a fair spread of takeover times.
		time.Sleep(rand.N(time.Second))
		holder := startWorker(t, bin, workerArgs(e.srv.URL, e.srv.Bucket, name, "-mode=hold", "-ttl", ttl.String())...)
		holder.await(t, "acquired", 10*time.Second)
		heir := startWorker(t, bin, workerArgs(e.srv.URL, e.srv.Bucket, name, "-mode=hold", "-ttl", ttl.String())...)
		time.Sleep(300 * time.Millisecond) // mid-section, before its first refresh
		if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		heir.await(t, "acquired", ttl+5*time.Second)
		took = append(took, time.Since(killed))
		// TTL + 1 s margin + up to 1 s of Date truncation, counted from the
		// holder's last write, which came before the kill.
		if d := took[len(took)-1]; d > ttl+2*time.Second {
			t.Errorf("run %d: taken over %v after the crash, want within TTL + 2s = %v", i, d, ttl+2*time.Second)
		}
	}
	slices.Sort(took)
	t.Logf("crash takeover with TTL %v over %d runs: min %v, median %v, max %v", ttl, runs,
		took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// A holder paused with SIGSTOP for longer than its TTL loses its lease: on
// SIGCONT it reports the loss and sends no write, and another process has
// held the lock meanwhile.
func testPause(t *testing.T, b *backend.Backend, bin string) {
	const ttl = 2 * time.Second
	e := newEnv(t, b)
	holder := startWorker(t, bin, workerArgs(e.srv.URL, e.srv.Bucket, "pause", "-mode=hold", "-ttl", ttl.String())...)
	holder.await(t, "acquired", 10*time.Second)
	if err := holder.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	heir := startWorker(t, bin, workerArgs(e.srv.URL, e.srv.Bucket, "pause", "-mode=hold", "-ttl", ttl.String())...)
	line := heir.await(t, "acquired", ttl+5*time.Second)
	heirAcquired := time.Since(stopped)
	heirToken, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
	time.Sleep(time.Second) // paused for well over the TTL in all
	resumed := time.Now()
	if err := holder.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	holder.await(t, "lost", 2*time.Second)
	noticed := time.Since(resumed)
	if err := holder.cmd.Wait(); err == nil || holder.cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("paused holder exited with %v, want status 3 (ErrLost)", err)
	}
	// The holder's own log of every request it sent.
	var writes int
	for _, line := range strings.Split(holder.stderr.String(), "\n") {
		var at int64
		var method, gen string
		if n, _ := fmt.Sscanf(line, "req %d %s %s", &at, &method, &gen); n != 3 {
			continue
		}
		if at >= resumed.UnixNano() && method != "GET" {
			writes++
			t.Errorf("the paused holder sent %s ifGenerationMatch=%s after it resumed", method, gen)
		}
	}
	t.Logf("holder paused %v (TTL %v); another process acquired %v into the pause; on resuming, the holder signalled the loss after %v and sent %d writes",
		resumed.Sub(stopped).Round(time.Millisecond), ttl, heirAcquired.Round(time.Millisecond), noticed.Round(time.Millisecond), writes)
	if obj := e.object("pause"); obj == nil || obj.Generation < heirToken {
		t.Errorf("the heir's lock was disturbed: %+v (heir's token %d)", obj, heirToken)
	}
}

// lockedBuffer is an io.Writer safe for a process's output and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
