package otel_test

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
	dimutexotel "github.com/dimutex/dimutex/contrib/otel"
	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/internal/tracescenario"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
)

// newMetrics returns Metrics on an SDK MeterProvider with a ManualReader.
func newMetrics(t *testing.T, opts ...dimutexotel.Option) (*dimutexotel.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m, err := dimutexotel.New(provider, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m, reader
}

// collect returns the metrics of this package's scope.
func collect(t *testing.T, reader *sdkmetric.ManualReader) metricdata.ScopeMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 1 {
		t.Fatalf("collected %d scopes; want 1", len(rm.ScopeMetrics))
	}
	return rm.ScopeMetrics[0]
}

// metricNamed returns the metric name of sm.
func metricNamed(t *testing.T, sm metricdata.ScopeMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, m := range sm.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no metric %s", name)
	return metricdata.Metrics{}
}

var scope = instrumentation.Scope{Name: dimutexotel.ScopeName}

// Builders of expected data.

func counter(name, desc, unit string, dps ...metricdata.DataPoint[int64]) metricdata.Metrics {
	return metricdata.Metrics{Name: name, Description: desc, Unit: unit, Data: metricdata.Sum[int64]{
		Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: dps,
	}}
}

func leasesHeld(dps ...metricdata.DataPoint[int64]) metricdata.Metrics {
	return metricdata.Metrics{Name: "dimutex.leases.held", Description: "Leases held now.", Unit: "{lease}",
		Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: false, DataPoints: dps}}
}

func dp(v int64, kvs ...attribute.KeyValue) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: attribute.NewSet(kvs...), Value: v}
}

func histogram(name, desc string, dps ...metricdata.HistogramDataPoint[float64]) metricdata.Metrics {
	return metricdata.Metrics{Name: name, Description: desc, Unit: "s", Data: metricdata.Histogram[float64]{
		Temporality: metricdata.CumulativeTemporality, DataPoints: dps,
	}}
}

// hdp is the data point of the values recorded with kvs, in buckets of
// bounds: each value counts in the first bucket whose bound is at least
// the value.
func hdp(bounds, values []float64, kvs ...attribute.KeyValue) metricdata.HistogramDataPoint[float64] {
	p := metricdata.HistogramDataPoint[float64]{
		Attributes: attribute.NewSet(kvs...), Bounds: bounds, BucketCounts: make([]uint64, len(bounds)+1),
		Count: uint64(len(values)), Min: metricdata.NewExtrema(values[0]), Max: metricdata.NewExtrema(values[0]),
	}
	for _, v := range values {
		i := 0
		for i < len(bounds) && v > bounds[i] {
			i++
		}
		p.BucketCounts[i]++
		p.Sum += v
		p.Min = metricdata.NewExtrema(min(v, must(p.Min)))
		p.Max = metricdata.NewExtrema(max(v, must(p.Max)))
	}
	return p
}

func must(e metricdata.Extrema[float64]) float64 { v, _ := e.Value(); return v }

// times returns n copies of v.
func times(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

var (
	lock = dimutexotel.LockKey.String("gs://b-test/lock")
	pool = dimutexotel.LockKey.String("gs://b-test/pool")
)

func op(s string) attribute.KeyValue      { return dimutexotel.OpKey.String(s) }
func status(c int) attribute.KeyValue     { return dimutexotel.HTTPResponseStatusCodeKey.Int(c) }
func errType(s string) attribute.KeyValue { return dimutexotel.ErrorTypeKey.String(s) }

// The scenario (see scenario_test.go), as OpenTelemetry data points. The
// requests, by time in seconds:
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
		m, reader := newMetrics(t)
		held := func(n int64) {
			t.Helper()
			got := metricNamed(t, collect(t, reader), "dimutex.leases.held")
			metricdatatest.AssertEqual(t, leasesHeld(dp(n, lock)), got, metricdatatest.IgnoreTimestamp())
		}
		tracescenario.Run(t, m.Trace(), func(step string) {
			switch step {
			case "acquired", "taken over":
				held(1)
			case "lost", "released":
				held(0)
			}
		})
		reqs := []struct {
			op     string
			status int
			n      int
			secs   float64
		}{
			{"insert", 200, 5, 0}, {"insert", 412, 2, 0}, {"insert", 503, 1, 0.25}, {"insert", 403, 1, 0},
			{"get", 200, 32, 0}, {"get", 404, 1, 0}, {"delete", 204, 1, 0},
		}
		var reqCounts []metricdata.DataPoint[int64]
		var reqDurations []metricdata.HistogramDataPoint[float64]
		for _, r := range reqs {
			kvs := []attribute.KeyValue{op(r.op), status(r.status)}
			if r.status >= 400 {
				kvs = append(kvs, errType(fmt.Sprint(r.status)))
			}
			reqCounts = append(reqCounts, dp(int64(r.n), kvs...))
			reqDurations = append(reqDurations, hdp(dimutexotel.DefRequestBuckets, times(r.n, r.secs), kvs...))
		}
		want := metricdata.ScopeMetrics{Scope: scope, Metrics: []metricdata.Metrics{
			histogram("dimutex.acquire.wait", "Time from the call of Acquire, TryAcquire or Campaign to its success.",
				hdp(dimutexotel.DefWaitBuckets, []float64{0, 31}, lock)),
			histogram("dimutex.lease.held", "How long each lease was held, recorded when it was released or lost.",
				hdp(dimutexotel.DefHeldBuckets, []float64{30, 15}, lock)),
			histogram("dimutex.request.duration", "Duration of each HTTP request to GCS, retries included.", reqDurations...),
			counter("dimutex.acquisitions", "Successful acquisitions.", "{acquisition}",
				dp(1, lock, dimutexotel.TakeoverKey.Bool(false)),
				dp(1, lock, dimutexotel.TakeoverKey.Bool(true))),
			counter("dimutex.leases.lost", "Leases lost.", "{lease}",
				dp(1, lock, dimutexotel.LossReasonKey.String("deleted"))),
			counter("dimutex.requests", "HTTP requests to GCS, retries included.", "{request}", reqCounts...),
			counter("dimutex.refreshes", "Successful refreshes of leases.", "{refresh}", dp(3, lock)),
			counter("dimutex.refresh.failures", "Failed background refreshes, each tried again before the lease's deadline.", "{refresh}",
				dp(1, lock)),
			counter("dimutex.releases", "Leases ended by Release.", "{release}",
				dp(1, lock, dimutexotel.ReleaseResultKey.String("released"))),
			leasesHeld(dp(0, lock)),
		}}
		metricdatatest.AssertEqual(t, want, collect(t, reader), metricdatatest.IgnoreTimestamp())
	})
}

// A semaphore is one series by default: its slots' "/slot-NNN" is cut.
func TestSemaphoreIsOneSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, reader := newMetrics(t)
		tracescenario.Semaphore(t, m.Trace(), func() {
			got := metricNamed(t, collect(t, reader), "dimutex.leases.held")
			metricdatatest.AssertEqual(t, leasesHeld(dp(2, pool)), got, metricdatatest.IgnoreTimestamp())
		})
		sm := collect(t, reader)
		for _, want := range []metricdata.Metrics{
			histogram("dimutex.acquire.wait", "Time from the call of Acquire, TryAcquire or Campaign to its success.",
				hdp(dimutexotel.DefWaitBuckets, []float64{0, 0}, pool)),
			histogram("dimutex.lease.held", "How long each lease was held, recorded when it was released or lost.",
				hdp(dimutexotel.DefHeldBuckets, []float64{1, 1}, pool)),
			counter("dimutex.acquisitions", "Successful acquisitions.", "{acquisition}",
				dp(2, pool, dimutexotel.TakeoverKey.Bool(false))),
			counter("dimutex.releases", "Leases ended by Release.", "{release}",
				dp(2, pool, dimutexotel.ReleaseResultKey.String("released"))),
			leasesHeld(dp(0, pool)),
			counter("dimutex.requests", "HTTP requests to GCS, retries included.", "{request}",
				dp(2, op("list"), status(200)), dp(2, op("insert"), status(200)), dp(2, op("delete"), status(204))),
		} {
			metricdatatest.AssertEqual(t, want, metricNamed(t, sm, want.Name), metricdatatest.IgnoreTimestamp())
		}
	})
}

// With WithKeepSlots each slot is a series; WithLockAttribute maps what is
// left.
func TestSemaphoreSlots(t *testing.T) {
	trim := dimutexotel.WithLockAttribute(func(lock string) string { return strings.TrimPrefix(lock, "gs://b-test/") })
	notTakeover := dimutexotel.TakeoverKey.Bool(false)
	l := dimutexotel.LockKey.String
	for _, tc := range []struct {
		name string
		opts []dimutexotel.Option
		want []metricdata.DataPoint[int64]
	}{
		{"WithKeepSlots", []dimutexotel.Option{dimutexotel.WithKeepSlots()},
			[]metricdata.DataPoint[int64]{dp(1, l("gs://b-test/pool/slot-000"), notTakeover), dp(1, l("gs://b-test/pool/slot-001"), notTakeover)}},
		{"WithLockAttribute", []dimutexotel.Option{trim},
			[]metricdata.DataPoint[int64]{dp(2, l("pool"), notTakeover)}},
		{"both", []dimutexotel.Option{trim, dimutexotel.WithKeepSlots()},
			[]metricdata.DataPoint[int64]{dp(1, l("pool/slot-000"), notTakeover), dp(1, l("pool/slot-001"), notTakeover)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, reader := newMetrics(t, tc.opts...)
				tracescenario.Semaphore(t, m.Trace(), func() {})
				want := counter("dimutex.acquisitions", "Successful acquisitions.", "{acquisition}", tc.want...)
				metricdatatest.AssertEqual(t, want, metricNamed(t, collect(t, reader), want.Name), metricdatatest.IgnoreTimestamp())
			})
		})
	}
}

// Requests that get no complete answer carry the class of their error, as
// the client met them: a reset, a timeout (the request hung until the
// attempt's timeout), and a cut-short answer to a write that was applied
// (status 200, error.type eof), which the acquisition then finds and
// adopts.
func TestTransportErrorTypes(t *testing.T) {
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
		metrics, reader := newMetrics(t)
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
		want := counter("dimutex.requests", "HTTP requests to GCS, retries included.", "{request}",
			dp(1, op("insert"), errType("reset")),
			dp(1, op("insert"), errType("timeout")),
			dp(1, op("insert"), status(200), errType("eof")),
			dp(1, op("insert"), status(412), errType("412")),
			dp(1, op("get"), status(200)),
			dp(1, op("delete"), status(204)))
		metricdatatest.AssertEqual(t, want, metricNamed(t, collect(t, reader), want.Name), metricdatatest.IgnoreTimestamp())
	})
}

func TestErrorType(t *testing.T) {
	reset := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	for _, tc := range []struct {
		e    dimutex.RequestEvent
		want string
	}{
		{dimutex.RequestEvent{Status: 200}, ""},
		{dimutex.RequestEvent{Status: 204}, ""},
		{dimutex.RequestEvent{Status: 304}, ""},
		{dimutex.RequestEvent{Status: 412}, "412"},
		{dimutex.RequestEvent{Status: 503}, "503"},
		{dimutex.RequestEvent{}, "_OTHER"},
		{dimutex.RequestEvent{Err: reset}, "reset"},
		{dimutex.RequestEvent{Status: 200, Err: io.ErrUnexpectedEOF}, "eof"},
		{dimutex.RequestEvent{Err: fmt.Errorf("x: %w", context.DeadlineExceeded)}, "timeout"},
		{dimutex.RequestEvent{Err: context.Canceled}, "canceled"},
		{dimutex.RequestEvent{Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, "refused"},
		{dimutex.RequestEvent{Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}, "dns"},
		{dimutex.RequestEvent{Err: errors.New("http2: stream error: stream ID 3; INTERNAL_ERROR")}, "reset"},
		{dimutex.RequestEvent{Err: timeoutError{}}, "timeout"},
		{dimutex.RequestEvent{Err: errors.New("authorizing request: no credentials")}, "_OTHER"},
	} {
		if got := dimutexotel.ErrorType(tc.e); got != tc.want {
			t.Errorf("ErrorType(%+v) = %q; want %q", tc.e, got, tc.want)
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
		if got := dimutexotel.StripSlot(in); got != want {
			t.Errorf("StripSlot(%q) = %q; want %q", in, got, want)
		}
	}
}

// A lease that ends without Release's delete is counted as not_released;
// a loss is counted by its reason, including one this package does not
// know.
func TestNotReleasedAndLossReasons(t *testing.T) {
	m, reader := newMetrics(t)
	tr := m.Trace()
	l := dimutexotel.LockKey.String("gs://b/l")
	tr.Acquired(dimutex.AcquireEvent{Lock: "gs://b/l"})
	tr.Released(dimutex.ReleaseEvent{Lock: "gs://b/l", Held: 2 * time.Second, Err: dimutex.ErrNotReleased})
	tr.Acquired(dimutex.AcquireEvent{Lock: "gs://b/l"})
	tr.Lost(dimutex.LossEvent{Lock: "gs://b/l", Reason: dimutex.LossTaken, Held: time.Second})
	tr.Acquired(dimutex.AcquireEvent{Lock: "gs://b/l"})
	tr.Lost(dimutex.LossEvent{Lock: "gs://b/l", Reason: "future", Held: time.Second})
	sm := collect(t, reader)
	for _, want := range []metricdata.Metrics{
		counter("dimutex.releases", "Leases ended by Release.", "{release}",
			dp(1, l, dimutexotel.ReleaseResultKey.String("not_released"))),
		counter("dimutex.leases.lost", "Leases lost.", "{lease}",
			dp(1, l, dimutexotel.LossReasonKey.String("taken")), dp(1, l, dimutexotel.LossReasonKey.String("future"))),
		leasesHeld(dp(0, l)),
	} {
		metricdatatest.AssertEqual(t, want, metricNamed(t, sm, want.Name), metricdatatest.IgnoreTimestamp())
	}
}

// New needs a MeterProvider; the global one works, a no-op until an SDK is
// installed.
func TestNew(t *testing.T) {
	if _, err := dimutexotel.New(nil); err == nil {
		t.Error("New(nil) returned no error")
	}
	m, err := dimutexotel.New(otel.GetMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	m.Trace().Acquired(dimutex.AcquireEvent{Lock: "gs://b/l"})
}

// The hooks' allocations, once a series exists, are those of the SDK's
// recording; this package adds none of its own.
func TestHookAllocations(t *testing.T) {
	m, _ := newMetrics(t)
	tr := m.Trace()
	events := func() {
		tr.Request(dimutex.RequestEvent{Op: "insert", Status: 200, Duration: time.Millisecond})
		tr.Request(dimutex.RequestEvent{Op: "get", Status: 503})
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
	reader := sdkmetric.NewManualReader()
	m, err := dimutexotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		b.Fatal(err)
	}
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
	if dimutexotel.Chain() != nil || dimutexotel.Chain(nil, &dimutex.Trace{}) != nil {
		t.Error("Chain of no hooks is not nil")
	}
	c := dimutexotel.Chain(&dimutex.Trace{Acquired: log("a")}, nil, &dimutex.Trace{}, &dimutex.Trace{Acquired: log("b"), Lost: func(dimutex.LossEvent) {}})
	if c.Request != nil || c.Refreshed != nil || c.RefreshFailed != nil || c.Released != nil || c.Lost == nil {
		t.Errorf("Chain sets the wrong hooks: %+v", c)
	}
	c.Acquired(dimutex.AcquireEvent{})
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("Chain called %v; want a, then b", got)
	}
	m, _ := newMetrics(t)
	one := dimutexotel.Chain(m.Trace())
	if one.Request == nil || one.Acquired == nil || one.Refreshed == nil || one.RefreshFailed == nil || one.Lost == nil || one.Released == nil {
		t.Errorf("Chain of a Metrics' Trace drops hooks: %+v", one)
	}
}

// The hooks may be called from many leases at once, each first for a new
// lock.
func TestConcurrentHooks(t *testing.T) {
	m, reader := newMetrics(t)
	tr := m.Trace()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				lock := fmt.Sprintf("gs://b/l%d", (g+i)%10)
				tr.Acquired(dimutex.AcquireEvent{Lock: lock})
				tr.Request(dimutex.RequestEvent{Op: "insert", Status: 200 + i%5})
				tr.Released(dimutex.ReleaseEvent{Lock: lock})
			}
		})
	}
	wg.Wait()
	sm := collect(t, reader)
	var acquisitions, requests, held int64
	for _, p := range metricNamed(t, sm, "dimutex.acquisitions").Data.(metricdata.Sum[int64]).DataPoints {
		acquisitions += p.Value
	}
	for _, p := range metricNamed(t, sm, "dimutex.requests").Data.(metricdata.Sum[int64]).DataPoints {
		requests += p.Value
	}
	points := metricNamed(t, sm, "dimutex.leases.held").Data.(metricdata.Sum[int64]).DataPoints
	for _, p := range points {
		held += p.Value
	}
	if acquisitions != 800 || requests != 800 || held != 0 || len(points) != 10 {
		t.Errorf("got %d acquisitions, %d requests, %d held in %d series; want 800, 800, 0 in 10", acquisitions, requests, held, len(points))
	}
}
