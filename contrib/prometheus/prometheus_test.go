package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	dimutexprom "github.com/dimutex/dimutex/contrib/prometheus"
	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/internal/tracescenario"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The scenario's series, exactly. The buckets of the request histogram are
// cut to three to keep this short; the others are the defaults.
const scenarioText = `
# HELP dimutex_acquire_wait_seconds Time from the call of Acquire, TryAcquire or Campaign to its success.
# TYPE dimutex_acquire_wait_seconds histogram
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="0.01"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="0.05"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="0.1"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="0.25"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="0.5"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="1"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="2.5"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="5"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="10"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="30"} 1
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="60"} 2
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="120"} 2
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="300"} 2
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="600"} 2
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="1800"} 2
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="3600"} 2
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/lock",le="+Inf"} 2
dimutex_acquire_wait_seconds_sum{lock="gs://b-test/lock"} 31
dimutex_acquire_wait_seconds_count{lock="gs://b-test/lock"} 2
# HELP dimutex_acquisitions_total Successful acquisitions; takeover="true" if an expired lease was taken over.
# TYPE dimutex_acquisitions_total counter
dimutex_acquisitions_total{lock="gs://b-test/lock",takeover="false"} 1
dimutex_acquisitions_total{lock="gs://b-test/lock",takeover="true"} 1
# HELP dimutex_lease_held_seconds How long each lease was held, observed when it was released or lost.
# TYPE dimutex_lease_held_seconds histogram
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="1"} 0
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="10"} 0
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="30"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="60"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="300"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="600"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="1800"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="3600"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="7200"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="14400"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="43200"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="86400"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/lock",le="+Inf"} 2
dimutex_lease_held_seconds_sum{lock="gs://b-test/lock"} 45
dimutex_lease_held_seconds_count{lock="gs://b-test/lock"} 2
# HELP dimutex_leases_held Leases held now.
# TYPE dimutex_leases_held gauge
dimutex_leases_held{lock="gs://b-test/lock"} 0
# HELP dimutex_leases_lost_total Leases lost, by reason: deadline, taken, deleted or overwritten.
# TYPE dimutex_leases_lost_total counter
dimutex_leases_lost_total{lock="gs://b-test/lock",reason="deleted"} 1
# HELP dimutex_refresh_failures_total Failed background refreshes, each tried again before the lease's deadline.
# TYPE dimutex_refresh_failures_total counter
dimutex_refresh_failures_total{lock="gs://b-test/lock"} 1
# HELP dimutex_refreshes_total Successful refreshes of leases.
# TYPE dimutex_refreshes_total counter
dimutex_refreshes_total{lock="gs://b-test/lock"} 3
# HELP dimutex_releases_total Leases ended by Release; result="not_released" if the lock could not be deleted and was left to expire.
# TYPE dimutex_releases_total counter
dimutex_releases_total{lock="gs://b-test/lock",result="released"} 1
# HELP dimutex_request_duration_seconds Duration of each HTTP request to GCS, retries included; code is the HTTP status or the class of transport error.
# TYPE dimutex_request_duration_seconds histogram
dimutex_request_duration_seconds_bucket{code="200",op="get",le="0.1"} 32
dimutex_request_duration_seconds_bucket{code="200",op="get",le="0.5"} 32
dimutex_request_duration_seconds_bucket{code="200",op="get",le="1"} 32
dimutex_request_duration_seconds_bucket{code="200",op="get",le="+Inf"} 32
dimutex_request_duration_seconds_sum{code="200",op="get"} 0
dimutex_request_duration_seconds_count{code="200",op="get"} 32
dimutex_request_duration_seconds_bucket{code="200",op="insert",le="0.1"} 5
dimutex_request_duration_seconds_bucket{code="200",op="insert",le="0.5"} 5
dimutex_request_duration_seconds_bucket{code="200",op="insert",le="1"} 5
dimutex_request_duration_seconds_bucket{code="200",op="insert",le="+Inf"} 5
dimutex_request_duration_seconds_sum{code="200",op="insert"} 0
dimutex_request_duration_seconds_count{code="200",op="insert"} 5
dimutex_request_duration_seconds_bucket{code="204",op="delete",le="0.1"} 1
dimutex_request_duration_seconds_bucket{code="204",op="delete",le="0.5"} 1
dimutex_request_duration_seconds_bucket{code="204",op="delete",le="1"} 1
dimutex_request_duration_seconds_bucket{code="204",op="delete",le="+Inf"} 1
dimutex_request_duration_seconds_sum{code="204",op="delete"} 0
dimutex_request_duration_seconds_count{code="204",op="delete"} 1
dimutex_request_duration_seconds_bucket{code="403",op="insert",le="0.1"} 1
dimutex_request_duration_seconds_bucket{code="403",op="insert",le="0.5"} 1
dimutex_request_duration_seconds_bucket{code="403",op="insert",le="1"} 1
dimutex_request_duration_seconds_bucket{code="403",op="insert",le="+Inf"} 1
dimutex_request_duration_seconds_sum{code="403",op="insert"} 0
dimutex_request_duration_seconds_count{code="403",op="insert"} 1
dimutex_request_duration_seconds_bucket{code="404",op="get",le="0.1"} 1
dimutex_request_duration_seconds_bucket{code="404",op="get",le="0.5"} 1
dimutex_request_duration_seconds_bucket{code="404",op="get",le="1"} 1
dimutex_request_duration_seconds_bucket{code="404",op="get",le="+Inf"} 1
dimutex_request_duration_seconds_sum{code="404",op="get"} 0
dimutex_request_duration_seconds_count{code="404",op="get"} 1
dimutex_request_duration_seconds_bucket{code="412",op="insert",le="0.1"} 2
dimutex_request_duration_seconds_bucket{code="412",op="insert",le="0.5"} 2
dimutex_request_duration_seconds_bucket{code="412",op="insert",le="1"} 2
dimutex_request_duration_seconds_bucket{code="412",op="insert",le="+Inf"} 2
dimutex_request_duration_seconds_sum{code="412",op="insert"} 0
dimutex_request_duration_seconds_count{code="412",op="insert"} 2
dimutex_request_duration_seconds_bucket{code="503",op="insert",le="0.1"} 0
dimutex_request_duration_seconds_bucket{code="503",op="insert",le="0.5"} 1
dimutex_request_duration_seconds_bucket{code="503",op="insert",le="1"} 1
dimutex_request_duration_seconds_bucket{code="503",op="insert",le="+Inf"} 1
dimutex_request_duration_seconds_sum{code="503",op="insert"} 0.25
dimutex_request_duration_seconds_count{code="503",op="insert"} 1
# HELP dimutex_requests_total HTTP requests to GCS, retries included; code is the HTTP status or the class of transport error.
# TYPE dimutex_requests_total counter
dimutex_requests_total{code="200",op="get"} 32
dimutex_requests_total{code="200",op="insert"} 5
dimutex_requests_total{code="204",op="delete"} 1
dimutex_requests_total{code="403",op="insert"} 1
dimutex_requests_total{code="404",op="get"} 1
dimutex_requests_total{code="412",op="insert"} 2
dimutex_requests_total{code="503",op="insert"} 1
`

// What the counters say, request by request (t in seconds):
//
//	insert 200: t=0 acquire, t=10 refresh, t=20 the 503's retry, t=63
//	            takeover, t=73 the 403's retry                         = 5
//	insert 412: t=30 the refresh of the deleted lock; t=32 the waiting
//	            Acquire's first write, which finds the lock held       = 2
//	get 200:    t=32 to t=63, one read a second                        = 32
//	get 404:    t=30 the read after the 412, which finds the lock gone
//	insert 503 (250 ms), insert 403, delete 204: one each.
//
// The waits are 0 s and 31 s; the leases were held 30 s (lost) and 15 s
// (released).
func TestScenario(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := dimutexprom.New(dimutexprom.Opts{RequestBuckets: []float64{0.1, 0.5, 1}})
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(m)
		held := func(n int) {
			t.Helper()
			want := fmt.Sprintf(`
# HELP dimutex_leases_held Leases held now.
# TYPE dimutex_leases_held gauge
dimutex_leases_held{lock="gs://b-test/lock"} %d
`, n)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dimutex_leases_held"); err != nil {
				t.Error(err)
			}
		}
		tracescenario.Run(t, m.Trace(), func(step string) {
			switch step {
			case "acquired", "taken over":
				held(1)
			case "lost", "released":
				held(0)
			}
		})
		if err := testutil.GatherAndCompare(reg, strings.NewReader(scenarioText), names...); err != nil {
			t.Error(err)
		}
	})
}

// names are every series' name.
var names = []string{
	"dimutex_acquire_wait_seconds", "dimutex_lease_held_seconds", "dimutex_request_duration_seconds",
	"dimutex_acquisitions_total", "dimutex_leases_lost_total", "dimutex_requests_total",
	"dimutex_refreshes_total", "dimutex_refresh_failures_total", "dimutex_releases_total",
	"dimutex_leases_held",
}

// A semaphore is one series by default: its slots' "/slot-NNN" is cut.
func TestSemaphoreIsOneSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := dimutexprom.New(dimutexprom.Opts{HeldBuckets: []float64{1}, WaitBuckets: []float64{1}})
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(m)
		tracescenario.Semaphore(t, m.Trace(), func() {
			want := `
# HELP dimutex_leases_held Leases held now.
# TYPE dimutex_leases_held gauge
dimutex_leases_held{lock="gs://b-test/pool"} 2
`
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dimutex_leases_held"); err != nil {
				t.Error(err)
			}
		})
		want := `
# HELP dimutex_acquire_wait_seconds Time from the call of Acquire, TryAcquire or Campaign to its success.
# TYPE dimutex_acquire_wait_seconds histogram
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/pool",le="1"} 2
dimutex_acquire_wait_seconds_bucket{lock="gs://b-test/pool",le="+Inf"} 2
dimutex_acquire_wait_seconds_sum{lock="gs://b-test/pool"} 0
dimutex_acquire_wait_seconds_count{lock="gs://b-test/pool"} 2
# HELP dimutex_acquisitions_total Successful acquisitions; takeover="true" if an expired lease was taken over.
# TYPE dimutex_acquisitions_total counter
dimutex_acquisitions_total{lock="gs://b-test/pool",takeover="false"} 2
# HELP dimutex_lease_held_seconds How long each lease was held, observed when it was released or lost.
# TYPE dimutex_lease_held_seconds histogram
dimutex_lease_held_seconds_bucket{lock="gs://b-test/pool",le="1"} 2
dimutex_lease_held_seconds_bucket{lock="gs://b-test/pool",le="+Inf"} 2
dimutex_lease_held_seconds_sum{lock="gs://b-test/pool"} 2
dimutex_lease_held_seconds_count{lock="gs://b-test/pool"} 2
# HELP dimutex_leases_held Leases held now.
# TYPE dimutex_leases_held gauge
dimutex_leases_held{lock="gs://b-test/pool"} 0
# HELP dimutex_releases_total Leases ended by Release; result="not_released" if the lock could not be deleted and was left to expire.
# TYPE dimutex_releases_total counter
dimutex_releases_total{lock="gs://b-test/pool",result="released"} 2
# HELP dimutex_requests_total HTTP requests to GCS, retries included; code is the HTTP status or the class of transport error.
# TYPE dimutex_requests_total counter
dimutex_requests_total{code="200",op="insert"} 2
dimutex_requests_total{code="200",op="list"} 2
dimutex_requests_total{code="204",op="delete"} 2
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
			"dimutex_acquire_wait_seconds", "dimutex_acquisitions_total", "dimutex_lease_held_seconds",
			"dimutex_leases_held", "dimutex_releases_total", "dimutex_requests_total"); err != nil {
			t.Error(err)
		}
	})
}

// With KeepSlots each slot is a series; LockLabel maps what is left.
func TestSemaphoreSlots(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts dimutexprom.Opts
		want string
	}{{
		name: "KeepSlots",
		opts: dimutexprom.Opts{KeepSlots: true},
		want: `
dimutex_acquisitions_total{lock="gs://b-test/pool/slot-000",takeover="false"} 1
dimutex_acquisitions_total{lock="gs://b-test/pool/slot-001",takeover="false"} 1
`,
	}, {
		name: "LockLabel",
		opts: dimutexprom.Opts{LockLabel: func(lock string) string { return strings.TrimPrefix(lock, "gs://b-test/") }},
		want: `
dimutex_acquisitions_total{lock="pool",takeover="false"} 2
`,
	}, {
		name: "KeepSlots and LockLabel",
		opts: dimutexprom.Opts{KeepSlots: true, LockLabel: func(lock string) string { return strings.TrimPrefix(lock, "gs://b-test/") }},
		want: `
dimutex_acquisitions_total{lock="pool/slot-000",takeover="false"} 1
dimutex_acquisitions_total{lock="pool/slot-001",takeover="false"} 1
`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := dimutexprom.New(tc.opts)
				tracescenario.Semaphore(t, m.Trace(), func() {})
				want := `
# HELP dimutex_acquisitions_total Successful acquisitions; takeover="true" if an expired lease was taken over.
# TYPE dimutex_acquisitions_total counter` + tc.want
				if err := testutil.CollectAndCompare(m, strings.NewReader(want), "dimutex_acquisitions_total"); err != nil {
					t.Error(err)
				}
			})
		})
	}
}

// Requests that get no complete answer are counted by the class of their
// error, as the client met them: a reset, a timeout (the request hung
// until the attempt's timeout), and a cut-short answer (to a write that
// was applied, which the acquisition then finds and adopts).
func TestTransportErrorCodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket("b-test"))
		var mu sync.Mutex
		faults := []dimutextest.FaultKind{dimutextest.ResetBefore, dimutextest.Hang, dimutextest.TruncateAfter}
		srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
			mu.Lock()
			defer mu.Unlock()
			if r.Op != "insert" || len(faults) == 0 {
				return dimutextest.Fault{}
			}
			f := dimutextest.Fault{Kind: faults[0]}
			faults = faults[1:]
			return f
		})
		metrics := dimutexprom.New(dimutexprom.Opts{})
		m, err := dimutex.NewGCS("b-test", "lock",
			dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()),
			dimutex.WithAttemptTimeout(2*time.Second),
			dimutex.WithTrace(metrics.Trace()))
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.TryAcquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := `
# HELP dimutex_requests_total HTTP requests to GCS, retries included; code is the HTTP status or the class of transport error.
# TYPE dimutex_requests_total counter
dimutex_requests_total{code="204",op="delete"} 1
dimutex_requests_total{code="200",op="get"} 1
dimutex_requests_total{code="eof",op="insert"} 1
dimutex_requests_total{code="412",op="insert"} 1
dimutex_requests_total{code="reset",op="insert"} 1
dimutex_requests_total{code="timeout",op="insert"} 1
`
		if err := testutil.CollectAndCompare(metrics, strings.NewReader(want), "dimutex_requests_total"); err != nil {
			t.Error(err)
		}
	})
}

func TestCode(t *testing.T) {
	reset := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	for _, tc := range []struct {
		e    dimutex.RequestEvent
		want string
	}{
		{dimutex.RequestEvent{Status: 200}, "200"},
		{dimutex.RequestEvent{Status: 412}, "412"},
		{dimutex.RequestEvent{Status: 599}, "599"},
		{dimutex.RequestEvent{Status: 600}, "600"},
		{dimutex.RequestEvent{}, "error"},
		{dimutex.RequestEvent{Err: reset}, "reset"},
		{dimutex.RequestEvent{Status: 200, Err: io.ErrUnexpectedEOF}, "eof"},
		{dimutex.RequestEvent{Err: fmt.Errorf("x: %w", context.DeadlineExceeded)}, "timeout"},
		{dimutex.RequestEvent{Err: context.Canceled}, "canceled"},
		{dimutex.RequestEvent{Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, "refused"},
		{dimutex.RequestEvent{Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}, "dns"},
		{dimutex.RequestEvent{Err: errors.New("http2: stream error: stream ID 3; INTERNAL_ERROR")}, "reset"},
		{dimutex.RequestEvent{Err: timeoutError{}}, "timeout"},
		{dimutex.RequestEvent{Err: errors.New("authorizing request: no credentials")}, "error"},
	} {
		if got := dimutexprom.Code(tc.e); got != tc.want {
			t.Errorf("Code(%+v) = %q; want %q", tc.e, got, tc.want)
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestStripSlot(t *testing.T) {
	for in, want := range map[string]string{
		"gs://b/pool/slot-000":   "gs://b/pool",
		"gs://b/pool/slot-999":   "gs://b/pool",
		"gs://b/a/b/slot-042":    "gs://b/a/b",
		"gs://b/pool/slot-1000":  "gs://b/pool/slot-1000",
		"gs://b/pool/slot-0a0":   "gs://b/pool/slot-0a0",
		"gs://b/pool/slot-00":    "gs://b/pool/slot-00",
		"gs://b/poolslot-000":    "gs://b/poolslot-000",
		"gs://b/lock":            "gs://b/lock",
		"/slot-000":              "/slot-000",
		"":                       "",
		"gs://b/pool/slot-007/x": "gs://b/pool/slot-007/x",
	} {
		if got := dimutexprom.StripSlot(in); got != want {
			t.Errorf("StripSlot(%q) = %q; want %q", in, got, want)
		}
	}
}

// A lease that ends without Release's delete is counted as not_released.
func TestNotReleased(t *testing.T) {
	m := dimutexprom.New(dimutexprom.Opts{})
	tr := m.Trace()
	tr.Acquired(dimutex.AcquireEvent{Lock: "gs://b/l"})
	tr.Released(dimutex.ReleaseEvent{Lock: "gs://b/l", Held: 2 * time.Second, Err: dimutex.ErrNotReleased})
	tr.Acquired(dimutex.AcquireEvent{Lock: "gs://b/l"})
	tr.Lost(dimutex.LossEvent{Lock: "gs://b/l", Reason: dimutex.LossTaken, Held: time.Second})
	want := `
# HELP dimutex_leases_held Leases held now.
# TYPE dimutex_leases_held gauge
dimutex_leases_held{lock="gs://b/l"} 0
# HELP dimutex_leases_lost_total Leases lost, by reason: deadline, taken, deleted or overwritten.
# TYPE dimutex_leases_lost_total counter
dimutex_leases_lost_total{lock="gs://b/l",reason="taken"} 1
# HELP dimutex_releases_total Leases ended by Release; result="not_released" if the lock could not be deleted and was left to expire.
# TYPE dimutex_releases_total counter
dimutex_releases_total{lock="gs://b/l",result="not_released"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want),
		"dimutex_leases_held", "dimutex_leases_lost_total", "dimutex_releases_total"); err != nil {
		t.Error(err)
	}
}

// The series follow Prometheus's naming conventions, and ConstLabels
// reach every one of them.
func TestLintAndConstLabels(t *testing.T) {
	m := dimutexprom.New(dimutexprom.Opts{ConstLabels: prometheus.Labels{"service": "billing"}})
	tr := m.Trace()
	tr.Request(dimutex.RequestEvent{Op: "insert", Status: 200})
	tr.Acquired(dimutex.AcquireEvent{Lock: "gs://b/l"})
	tr.Refreshed(dimutex.RefreshEvent{Lock: "gs://b/l"})
	tr.RefreshFailed(dimutex.RefreshFailedEvent{Lock: "gs://b/l"})
	tr.Lost(dimutex.LossEvent{Lock: "gs://b/l", Reason: dimutex.LossDeadline})
	tr.Released(dimutex.ReleaseEvent{Lock: "gs://b/l"})
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(m); n != 10 {
		t.Errorf("collected %d series; want 10", n)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			found := false
			for _, lp := range metric.GetLabel() {
				found = found || lp.GetName() == "service" && lp.GetValue() == "billing"
			}
			if !found {
				t.Errorf("%s: a series lacks the constant label: %v", mf.GetName(), metric.GetLabel())
			}
		}
	}
}

// Once a series exists, the hooks allocate nothing.
func TestHooksDoNotAllocate(t *testing.T) {
	m := dimutexprom.New(dimutexprom.Opts{})
	tr := m.Trace()
	events := func() {
		tr.Request(dimutex.RequestEvent{Op: "insert", Status: 200, Duration: time.Millisecond})
		tr.Request(dimutex.RequestEvent{Op: "get", Err: io.ErrUnexpectedEOF})
		tr.Acquired(dimutex.AcquireEvent{Lock: "gs://b/pool/slot-001", Waited: time.Second})
		tr.Refreshed(dimutex.RefreshEvent{Lock: "gs://b/pool/slot-001"})
		tr.RefreshFailed(dimutex.RefreshFailedEvent{Lock: "gs://b/pool/slot-001"})
		tr.Released(dimutex.ReleaseEvent{Lock: "gs://b/pool/slot-001", Held: time.Minute})
	}
	events()
	if n := testing.AllocsPerRun(100, events); n != 0 {
		t.Errorf("the hooks allocate %v times per round; want 0", n)
	}
}

func BenchmarkHooks(b *testing.B) {
	m := dimutexprom.New(dimutexprom.Opts{})
	tr := m.Trace()
	b.ReportAllocs()
	for b.Loop() {
		tr.Request(dimutex.RequestEvent{Op: "insert", Status: 200, Duration: time.Millisecond})
		tr.Refreshed(dimutex.RefreshEvent{Lock: "gs://b/lock"})
	}
}

func TestChain(t *testing.T) {
	var got []string
	log := func(s string) func(dimutex.AcquireEvent) {
		return func(dimutex.AcquireEvent) { got = append(got, s) }
	}
	if dimutexprom.Chain() != nil || dimutexprom.Chain(nil, &dimutex.Trace{}) != nil {
		t.Error("Chain of no hooks is not nil")
	}
	c := dimutexprom.Chain(&dimutex.Trace{Acquired: log("a")}, nil, &dimutex.Trace{}, &dimutex.Trace{Acquired: log("b"), Lost: func(dimutex.LossEvent) {}})
	if c.Request != nil || c.Refreshed != nil || c.RefreshFailed != nil || c.Released != nil || c.Lost == nil {
		t.Errorf("Chain sets the wrong hooks: %+v", c)
	}
	c.Acquired(dimutex.AcquireEvent{})
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("Chain called %v; want a, then b", got)
	}
	// Each hook of a Metrics is called through Chain.
	m := dimutexprom.New(dimutexprom.Opts{})
	one := dimutexprom.Chain(m.Trace())
	if one.Request == nil || one.Acquired == nil || one.Refreshed == nil || one.RefreshFailed == nil || one.Lost == nil || one.Released == nil {
		t.Errorf("Chain of a Metrics' Trace drops hooks: %+v", one)
	}
}
