// Package prometheus exports the events of dimutex locks, elections and
// semaphores as Prometheus metrics, through
// github.com/prometheus/client_golang.
//
// New returns a Metrics, which is a prometheus.Collector; register it, and
// pass its Trace to the locks with dimutex.WithTrace:
//
//	metrics := dimutexprom.New(dimutexprom.Opts{})
//	prometheus.MustRegister(metrics)
//	m, err := dimutex.NewGCS("bucket", "jobs/nightly", dimutex.WithTrace(metrics.Trace()))
//
// One Metrics may serve any number of locks; the series are told apart by
// the "lock" label. (The package is named prometheus, like client_golang's;
// import it under another name, such as dimutexprom.)
//
// # Series
//
//	name                              kind       labels
//	dimutex_acquire_wait_seconds      histogram  lock
//	dimutex_lease_held_seconds        histogram  lock
//	dimutex_request_duration_seconds  histogram  op, code
//	dimutex_acquisitions_total        counter    lock, takeover
//	dimutex_leases_lost_total         counter    lock, reason
//	dimutex_requests_total            counter    op, code
//	dimutex_refreshes_total           counter    lock
//	dimutex_refresh_failures_total    counter    lock
//	dimutex_releases_total            counter    lock, result
//	dimutex_leases_held               gauge      lock
//
// What they measure:
//
//   - dimutex_acquire_wait_seconds: the time from the call of Acquire
//     (TryAcquire, Campaign) to its success.
//   - dimutex_lease_held_seconds: how long each lease was held, observed
//     when it is released or lost.
//   - dimutex_request_duration_seconds and dimutex_requests_total: each
//     HTTP request to GCS, retries included.
//   - dimutex_acquisitions_total: successful acquisitions; takeover is
//     "true" if an expired lease was taken over, else "false".
//   - dimutex_leases_lost_total: leases lost; reason is deadline, taken,
//     deleted or overwritten (dimutex.LossReason).
//   - dimutex_refreshes_total: successful refreshes (background,
//     Lease.Refresh, Lease.Proclaim).
//   - dimutex_refresh_failures_total: failed background refreshes, each
//     tried again before the lease's deadline.
//   - dimutex_releases_total: leases ended by Release; result is released,
//     or not_released if the lock could not be deleted and was left to
//     expire (dimutex.ErrNotReleased).
//   - dimutex_leases_held: the leases held now: up on an acquisition, down
//     on a release or a loss.
//
// The op label is the JSON API call: insert, get, delete or list. The code
// label is the HTTP status of the answer, such as "200", "412" or "503", or,
// when no complete answer arrived, the class of the transport error:
// "timeout", "canceled", "reset" (connection reset or aborted, broken
// pipe, HTTP/2 stream reset), "eof" (the answer was cut short), "refused",
// "dns", or "error" for anything else.
//
// # Cardinality
//
// The lock label is the lock's location, "gs://bucket/name": one value per
// lock name that the process uses, kept until the process exits. Request
// series carry no lock label, only op and code, so they stay few whatever
// the number of locks.
//
// Each slot of a Semaphore is a lock object of its own,
// "gs://bucket/name/slot-NNN". By default the "/slot-NNN" suffix is cut
// (see StripSlot), so that a semaphore is one series, "gs://bucket/name",
// whatever its size; Opts.KeepSlots gives each slot its own series instead.
// A Mutex whose object name itself ends in "/slot-" and three digits is cut
// the same way. For other schemes, such as locks named per job, map lock
// names to fewer values with Opts.LockLabel.
//
// # Combining with another Trace
//
// A lock takes one Trace. To combine this package's with one of your own,
// pass both to Chain.
//
// The hooks are synchronous and cheap: a label lookup and an atomic update
// per event, with no lock of their own beyond client_golang's read lock,
// and no allocation once a series exists (except to classify a rare
// transport error: DNS, HTTP/2, unknown).
package prometheus

import (
	"strconv"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/gcsjson"
	"github.com/prometheus/client_golang/prometheus"
)

// Default histogram buckets, in seconds.
var (
	// DefWaitBuckets are the buckets of dimutex_acquire_wait_seconds: an
	// acquisition of a free lock takes a round trip or two; one that waits
	// for a holder may take up to its TTL (60 s by default), or longer.
	DefWaitBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	// DefHeldBuckets are the buckets of dimutex_lease_held_seconds: from a
	// second to a day.
	DefHeldBuckets = []float64{1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}
	// DefRequestBuckets are the buckets of
	// dimutex_request_duration_seconds: those that OpenTelemetry's
	// semantic conventions advise for HTTP request durations. A request
	// is cut off after 10 s by default (dimutex.WithAttemptTimeout).
	DefRequestBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
)

// Opts configures Metrics. The zero Opts gives the defaults.
type Opts struct {
	// KeepSlots gives each slot of a Semaphore its own lock label value,
	// "gs://bucket/name/slot-NNN". By default the suffix is cut, and a
	// semaphore is one series, "gs://bucket/name".
	KeepSlots bool
	// LockLabel, if not nil, maps each lock's location (after the slot
	// suffix is cut, unless KeepSlots is set) to the value of its lock
	// label, for instance to fold locks named per job into one series. It
	// is called for every event that carries a lock, so it must be fast
	// and safe for concurrent use.
	LockLabel func(lock string) string
	// ConstLabels are added to every series, as in prometheus.Opts.
	ConstLabels prometheus.Labels
	// WaitBuckets, HeldBuckets and RequestBuckets are the buckets of the
	// histograms, in seconds; nil means DefWaitBuckets, DefHeldBuckets and
	// DefRequestBuckets.
	WaitBuckets, HeldBuckets, RequestBuckets []float64
}

// Metrics turns the events of dimutex locks into Prometheus metrics. It is
// a prometheus.Collector: register it with a prometheus.Registerer, and
// pass Trace to the locks with dimutex.WithTrace. It is safe for
// concurrent use.
type Metrics struct {
	lockLabel func(string) string

	wait, held, reqDuration              *prometheus.HistogramVec
	acquisitions, lost, requests         *prometheus.CounterVec
	refreshes, refreshFailures, releases *prometheus.CounterVec
	leasesHeld                           *prometheus.GaugeVec
	collectors                           []prometheus.Collector
}

// New returns Metrics configured by opts. It panics if a bucket list is
// not strictly increasing, as client_golang does.
func New(opts Opts) *Metrics {
	m := &Metrics{lockLabel: lockLabelFunc(opts.KeepSlots, opts.LockLabel)}
	buckets := func(b, def []float64) []float64 {
		if b == nil {
			return def
		}
		return b
	}
	histogram := func(name, help string, b []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "dimutex", Name: name, Help: help, Buckets: b, ConstLabels: opts.ConstLabels,
		}, labels)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "dimutex", Name: name, Help: help, ConstLabels: opts.ConstLabels,
		}, labels)
	}
	m.wait = histogram("acquire_wait_seconds",
		"Time from the call of Acquire, TryAcquire or Campaign to its success.",
		buckets(opts.WaitBuckets, DefWaitBuckets), "lock")
	m.held = histogram("lease_held_seconds",
		"How long each lease was held, observed when it was released or lost.",
		buckets(opts.HeldBuckets, DefHeldBuckets), "lock")
	m.reqDuration = histogram("request_duration_seconds",
		"Duration of each HTTP request to GCS, retries included; code is the HTTP status or the class of transport error.",
		buckets(opts.RequestBuckets, DefRequestBuckets), "op", "code")
	m.acquisitions = counter("acquisitions_total",
		`Successful acquisitions; takeover="true" if an expired lease was taken over.`, "lock", "takeover")
	m.lost = counter("leases_lost_total",
		"Leases lost, by reason: deadline, taken, deleted or overwritten.", "lock", "reason")
	m.requests = counter("requests_total",
		"HTTP requests to GCS, retries included; code is the HTTP status or the class of transport error.", "op", "code")
	m.refreshes = counter("refreshes_total", "Successful refreshes of leases.", "lock")
	m.refreshFailures = counter("refresh_failures_total",
		"Failed background refreshes, each tried again before the lease's deadline.", "lock")
	m.releases = counter("releases_total",
		`Leases ended by Release; result="not_released" if the lock could not be deleted and was left to expire.`, "lock", "result")
	m.leasesHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "dimutex", Name: "leases_held", Help: "Leases held now.", ConstLabels: opts.ConstLabels,
	}, []string{"lock"})
	m.collectors = []prometheus.Collector{
		m.wait, m.held, m.reqDuration, m.acquisitions, m.lost, m.requests,
		m.refreshes, m.refreshFailures, m.releases, m.leasesHeld,
	}
	return m
}

// Describe sends the descriptors of all the metrics, as
// prometheus.Collector asks.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors {
		c.Describe(ch)
	}
}

// Collect sends every series, as prometheus.Collector asks.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors {
		c.Collect(ch)
	}
}

// Trace returns the hooks that record the metrics, for dimutex.WithTrace.
// Every call returns a new Trace with the same hooks; changing it changes
// nothing else.
func (m *Metrics) Trace() *dimutex.Trace {
	return &dimutex.Trace{
		Request:       m.request,
		Acquired:      m.acquired,
		Refreshed:     m.refreshed,
		RefreshFailed: m.refreshFailed,
		Lost:          m.leaseLost,
		Released:      m.released,
	}
}

func (m *Metrics) request(e dimutex.RequestEvent) {
	code := Code(e)
	m.requests.WithLabelValues(e.Op, code).Inc()
	m.reqDuration.WithLabelValues(e.Op, code).Observe(e.Duration.Seconds())
}

func (m *Metrics) acquired(e dimutex.AcquireEvent) {
	lock := m.lockLabel(e.Lock)
	m.acquisitions.WithLabelValues(lock, strconv.FormatBool(e.TookOver)).Inc()
	m.wait.WithLabelValues(lock).Observe(e.Waited.Seconds())
	m.leasesHeld.WithLabelValues(lock).Inc()
}

func (m *Metrics) refreshed(e dimutex.RefreshEvent) {
	m.refreshes.WithLabelValues(m.lockLabel(e.Lock)).Inc()
}

func (m *Metrics) refreshFailed(e dimutex.RefreshFailedEvent) {
	m.refreshFailures.WithLabelValues(m.lockLabel(e.Lock)).Inc()
}

func (m *Metrics) leaseLost(e dimutex.LossEvent) {
	lock := m.lockLabel(e.Lock)
	m.lost.WithLabelValues(lock, string(e.Reason)).Inc()
	m.held.WithLabelValues(lock).Observe(e.Held.Seconds())
	m.leasesHeld.WithLabelValues(lock).Dec()
}

func (m *Metrics) released(e dimutex.ReleaseEvent) {
	lock := m.lockLabel(e.Lock)
	result := "released"
	if e.Err != nil {
		result = "not_released"
	}
	m.releases.WithLabelValues(lock, result).Inc()
	m.held.WithLabelValues(lock).Observe(e.Held.Seconds())
	m.leasesHeld.WithLabelValues(lock).Dec()
}

// lockLabelFunc returns the function that maps a lock's location to its
// label value.
func lockLabelFunc(keepSlots bool, f func(string) string) func(string) string {
	switch {
	case keepSlots && f == nil:
		return func(lock string) string { return lock }
	case keepSlots:
		return f
	case f == nil:
		return StripSlot
	}
	return func(lock string) string { return f(StripSlot(lock)) }
}

// StripSlot returns lock without a final "/slot-NNN" (three digits): for a
// Semaphore's slot "gs://bucket/name/slot-007", the semaphore
// "gs://bucket/name". Any other lock is returned as it is.
func StripSlot(lock string) string {
	const suffix = len("/slot-000")
	n := len(lock)
	if n <= suffix || lock[n-suffix:n-3] != "/slot-" {
		return lock
	}
	for _, c := range lock[n-3:] {
		if c < '0' || c > '9' {
			return lock
		}
	}
	return lock[:n-suffix]
}

// Code returns the value of the code label of a request: its HTTP status,
// such as "200" or "503", or the class of its transport error if no
// complete answer arrived (see the package documentation).
func Code(e dimutex.RequestEvent) string {
	if e.Err != nil {
		return ErrorClass(e.Err)
	}
	if e.Status >= 100 && e.Status < 600 {
		return statusText[e.Status-100]
	}
	if e.Status == 0 {
		return "error"
	}
	return strconv.Itoa(e.Status)
}

// statusText holds "100" to "599", so that labelling a request does not
// allocate.
var statusText = func() []string {
	s := make([]string, 500)
	for i := range s {
		s[i] = strconv.Itoa(100 + i)
	}
	return s
}()

// ErrorClass returns the class of a transport error: "timeout",
// "canceled", "reset", "eof", "refused", "dns" or "error".
func ErrorClass(err error) string {
	class := gcsjson.ErrorClass(err)
	if class == "" {
		return "error"
	}
	return class
}
