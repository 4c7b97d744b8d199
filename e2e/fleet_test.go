package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file holds what the election and semaphore process tests share: a
// fleet of lockworker processes that the test starts, kills, pauses and
// restarts, and the validity log they write.

// buildLockworker builds the lockworker into a directory of t's.
func buildLockworker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lockworker")
	build := exec.Command("go", "build", "-o", bin, "./internal/lockworker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building lockworker: %v\n%s", err, out)
	}
	return bin
}

// fleet is a set of lockworker processes, worker i run with args(i). Every
// line they print arrives on events, in order per worker.
type fleet struct {
	t      *testing.T
	bin    string
	args   func(i int) []string
	events chan fleetEvent

	mu    sync.Mutex
	procs []*fleetProc // by worker id; replaced on restart
}

type fleetProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
}

// fleetEvent is a line a worker printed, or its exit (line "").
type fleetEvent struct {
	worker int
	pid    int
	line   string
	at     time.Time
	proc   *fleetProc
}

func newFleet(t *testing.T, bin string, n int, args func(i int) []string) *fleet {
	f := &fleet{t: t, bin: bin, args: args, events: make(chan fleetEvent, 1<<14), procs: make([]*fleetProc, n)}
	t.Cleanup(f.stopAll)
	for i := range n {
		f.start(i)
	}
	return f
}

// start starts worker i, or starts it again.
func (f *fleet) start(i int) {
	f.t.Helper()
	cmd := exec.Command(f.bin, f.args(i)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	p := &fleetProc{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	pid := cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f.events <- fleetEvent{worker: i, pid: pid, line: sc.Text(), at: time.Now(), proc: p}
		}
		cmd.Wait()
		close(p.exited)
		f.events <- fleetEvent{worker: i, pid: pid, at: time.Now(), proc: p}
	}()
	f.mu.Lock()
	f.procs[i] = p
	f.mu.Unlock()
}

func (f *fleet) proc(i int) *fleetProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[i]
}

// kill sends SIGKILL to worker i and returns when it was sent.
func (f *fleet) kill(i int) time.Time {
	p := f.proc(i)
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		f.t.Errorf("killing worker %d: %v", i, err)
	}
	return at
}

// signal sends sig (SIGSTOP, SIGCONT) to worker i and returns when.
func (f *fleet) signal(i int, sig syscall.Signal) time.Time {
	p := f.proc(i)
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		f.t.Errorf("signal %v to worker %d: %v", sig, i, err)
	}
	return at
}

// restart waits for worker i, which was killed, to exit and starts it again.
func (f *fleet) restart(i int) {
	p := f.proc(i)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		f.t.Fatalf("worker %d did not exit after SIGKILL", i)
	}
	f.start(i)
}

// stopAll kills every worker, stopped ones too, and waits for them.
func (f *fleet) stopAll() {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			p.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	for _, p := range procs {
		if p != nil {
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
			}
		}
	}
}

// unexpectedExit reports a worker that exited without being killed: its
// stderr says why.
func (f *fleet) unexpectedExit(e fleetEvent) {
	p := e.proc
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return
	}
	f.t.Errorf("worker %d (pid %d) exited on its own:\n%s", e.worker, e.pid, p.stderr.tail(20))
}

// validity is one holding merged from a validity log: the holder of token
// (on slot, for a semaphore) was valid from start to end.
type validity struct {
	worker, pid int
	slot        string
	token       int64
	start, end  time.Time
}

// readValidity reads the log the workers wrote and merges its lines per
// slot and token: the holding began at the first line's Start and was
// checked valid up to the largest End. Sorted by start.
func readValidity(t *testing.T, path string) []validity {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		slot  string
		token int64
	}
	byKey := map[key]*validity{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var r struct {
			Worker, PID int
			Slot        string
			Token       int64
			Start, End  int64
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad validity line %q: %v", line, err)
		}
		k := key{r.Slot, r.Token}
		v := byKey[k]
		switch {
		case v == nil:
			byKey[k] = &validity{worker: r.Worker, pid: r.PID, slot: r.Slot, token: r.Token,
				start: time.Unix(0, r.Start), end: time.Unix(0, r.End)}
		case v.pid != r.PID:
			t.Errorf("token %d (slot %q) logged by two processes, %d and %d", r.Token, r.Slot, v.pid, r.PID)
		default:
			if s := time.Unix(0, r.Start); s.Before(v.start) {
				v.start = s
			}
			if e := time.Unix(0, r.End); e.After(v.end) {
				v.end = e
			}
		}
	}
	var all []validity
	for _, v := range byKey {
		all = append(all, *v)
	}
	slices.SortFunc(all, func(a, b validity) int { return a.start.Compare(b.start) })
	return all
}

// checkExclusive checks that holdings of one lock (an election, or one
// slot) never overlap and that their tokens increase, and returns the gaps
// between consecutive holdings.
func checkExclusive(t *testing.T, what string, vs []validity) (gaps []time.Duration) {
	t.Helper()
	for i := 1; i < len(vs); i++ {
		prev, cur := vs[i-1], vs[i]
		if !cur.start.After(prev.end) {
			t.Errorf("%s: two valid holders at once: token %d (worker %d) valid until %s, token %d (worker %d) from %s",
				what, prev.token, prev.worker, prev.end.Format("15:04:05.000000"), cur.token, cur.worker, cur.start.Format("15:04:05.000000"))
		}
		if cur.token <= prev.token {
			t.Errorf("%s: token did not increase: %d then %d", what, prev.token, cur.token)
		}
		gaps = append(gaps, cur.start.Sub(prev.end))
	}
	return gaps
}

// spread summarises durations as "min / median / max (n)".
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%v / %v / %v (n=%d)", r(s[0]), r(median(s)), r(s[len(s)-1]), len(s))
}

// median of sorted durations.
func median(s []time.Duration) time.Duration {
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
