// Package otel records the events of dimutex locks, elections and
// semaphores as OpenTelemetry metrics, through the OpenTelemetry metric API
// (go.opentelemetry.io/otel/metric). Any SDK or exporter may collect them.
//
// New returns a Metrics for a MeterProvider; pass its Trace to the locks
// with dimutex.WithTrace:
//
//	metrics, err := dimutexotel.New(otel.GetMeterProvider()) // or your SDK's provider
//	if err != nil { ... }
//	m, err := dimutex.NewGCS("bucket", "jobs/nightly", dimutex.WithTrace(metrics.Trace()))
//
// One Metrics may serve any number of locks; they are told apart by the
// dimutex.lock attribute. (The package is named otel, like OpenTelemetry's
// own; import it under another name, such as dimutexotel.)
//
// # Instruments
//
// The meter is named ScopeName. Names follow OpenTelemetry's semantic
// conventions: durations are histograms in seconds, counts carry no
// "total", attributes are namespaced.
//
//	name                      kind           unit           attributes
//	dimutex.acquire.wait      histogram      s              dimutex.lock
//	dimutex.lease.held        histogram      s              dimutex.lock
//	dimutex.request.duration  histogram      s              dimutex.op, http.response.status_code, error.type
//	dimutex.acquisitions      counter        {acquisition}  dimutex.lock, dimutex.takeover
//	dimutex.leases.lost       counter        {lease}        dimutex.lock, dimutex.loss.reason
//	dimutex.requests          counter        {request}      dimutex.op, http.response.status_code, error.type
//	dimutex.refreshes         counter        {refresh}      dimutex.lock
//	dimutex.refresh.failures  counter        {refresh}      dimutex.lock
//	dimutex.releases          counter        {release}      dimutex.lock, dimutex.release.result
//	dimutex.leases.held       updowncounter  {lease}        dimutex.lock
//
// What they measure:
//
//   - dimutex.acquire.wait: the time from the call of Acquire (TryAcquire,
//     Campaign) to its success.
//   - dimutex.lease.held: how long each lease was held, recorded when it
//     is released or lost.
//   - dimutex.request.duration and dimutex.requests: each HTTP request to
//     GCS, retries included.
//   - dimutex.acquisitions: successful acquisitions.
//   - dimutex.leases.lost: leases lost.
//   - dimutex.refreshes: successful refreshes (background, Lease.Refresh,
//     Lease.Proclaim).
//   - dimutex.refresh.failures: failed background refreshes, each tried
//     again before the lease's deadline.
//   - dimutex.releases: leases ended by Release.
//   - dimutex.leases.held: the leases held now: up on an acquisition, down
//     on a release or a loss.
//
// The attributes:
//
//   - dimutex.lock: the lock's location, "gs://bucket/name" (see
//     Cardinality).
//   - dimutex.takeover: true if the acquisition took over an expired lease.
//   - dimutex.loss.reason: deadline, taken, deleted or overwritten
//     (dimutex.LossReason).
//   - dimutex.release.result: released, or not_released if the lock could
//     not be deleted and was left to expire (dimutex.ErrNotReleased).
//   - dimutex.op: the JSON API call: insert, get, delete or list.
//   - http.response.status_code: the HTTP status, if an answer arrived.
//   - error.type: set, as OpenTelemetry's HTTP client conventions say, for
//     a request that failed: the status as a string for a status of 400
//     or more (such as "412" or "503"), or, when no complete answer
//     arrived, the class of the transport error: "timeout", "canceled",
//     "reset" (connection reset or aborted, broken pipe, HTTP/2 stream
//     reset), "eof" (the answer was cut short), "refused", "dns", or
//     "_OTHER".
//
// The histograms advise bucket boundaries (DefWaitBuckets,
// DefHeldBuckets, DefRequestBuckets); change them, or the aggregation, with
// a View of your SDK.
//
// # Cardinality
//
// dimutex.lock takes one value per lock name that the process uses. The
// request instruments carry no lock attribute, only the operation and its
// outcome, so they stay few whatever the number of locks.
//
// Each slot of a Semaphore is a lock object of its own,
// "gs://bucket/name/slot-NNN". By default the "/slot-NNN" suffix is cut
// (see StripSlot), so that a semaphore is one series, "gs://bucket/name",
// whatever its size; WithKeepSlots gives each slot its own series instead.
// A Mutex whose object name itself ends in "/slot-" and three digits is cut
// the same way. For other schemes, such as locks named per job, map lock
// names to fewer values with WithLockAttribute.
//
// # Combining with another Trace
//
// A lock takes one Trace. To combine this package's with one of your own,
// pass both to Chain.
//
// The hooks are synchronous and cheap: the attribute sets of each lock and
// of each kind of request are built once and cached, so an event costs a
// read-locked map lookup and the SDK's recording, and allocates nothing
// once its series exists (except to classify a rare transport error: DNS,
// HTTP/2, unknown).
package otel

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/gcsjson"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the name of the instrumentation scope: the Meter that New
// gets from its MeterProvider.
const ScopeName = "github.com/dimutex/dimutex/contrib/otel"

// The attribute keys. HTTPResponseStatusCodeKey and ErrorTypeKey are those
// of OpenTelemetry's semantic conventions.
const (
	LockKey                   = attribute.Key("dimutex.lock")
	TakeoverKey               = attribute.Key("dimutex.takeover")
	LossReasonKey             = attribute.Key("dimutex.loss.reason")
	ReleaseResultKey          = attribute.Key("dimutex.release.result")
	OpKey                     = attribute.Key("dimutex.op")
	HTTPResponseStatusCodeKey = attribute.Key("http.response.status_code")
	ErrorTypeKey              = attribute.Key("error.type")
)

// Advised histogram bucket boundaries, in seconds.
var (
	// DefWaitBuckets are advised for dimutex.acquire.wait: an acquisition
	// of a free lock takes a round trip or two; one that waits for a
	// holder may take up to its TTL (60 s by default), or longer.
	DefWaitBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	// DefHeldBuckets are advised for dimutex.lease.held: from a second to
	// a day.
	DefHeldBuckets = []float64{1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}
	// DefRequestBuckets are advised for dimutex.request.duration: those of
	// the semantic conventions for HTTP request durations. A request is
	// cut off after 10 s by default (dimutex.WithAttemptTimeout).
	DefRequestBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
)

// An Option configures New.
type Option func(*config)

type config struct {
	keepSlots bool
	lockAttr  func(string) string
}

// WithKeepSlots gives each slot of a Semaphore its own dimutex.lock value,
// "gs://bucket/name/slot-NNN". By default the suffix is cut, and a
// semaphore is one series, "gs://bucket/name".
func WithKeepSlots() Option { return func(c *config) { c.keepSlots = true } }

// WithLockAttribute maps each lock's location (after the slot suffix is
// cut, unless WithKeepSlots is given) to the value of its dimutex.lock
// attribute, for instance to fold locks named per job into one series. f
// is called for every event that carries a lock, so it must be fast and
// safe for concurrent use.
func WithLockAttribute(f func(lock string) string) Option {
	return func(c *config) { c.lockAttr = f }
}

// Metrics records the events of dimutex locks with OpenTelemetry
// instruments. Pass Trace to the locks with dimutex.WithTrace. It is safe
// for concurrent use.
type Metrics struct {
	lockAttr func(string) string

	wait, held, reqDuration              metric.Float64Histogram
	acquisitions, lost, requests         metric.Int64Counter
	refreshes, refreshFailures, releases metric.Int64Counter
	leasesHeld                           metric.Int64UpDownCounter

	mu    sync.RWMutex
	locks map[string]*lockSets  // by dimutex.lock value
	reqs  map[requestKey]*attrs // by kind of request
}

// attrs is one attribute set, as the options of a measurement. The slices
// are built once and passed as they are, so that a measurement allocates
// no slice of options.
type attrs struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func newAttrs(kvs ...attribute.KeyValue) *attrs {
	opt := metric.WithAttributeSet(attribute.NewSet(kvs...))
	return &attrs{add: []metric.AddOption{opt}, rec: []metric.RecordOption{opt}}
}

// lockSets are the attribute sets of one dimutex.lock value, built once.
type lockSets struct {
	lock     *attrs
	acquired [2]*attrs // takeover false, true
	released [2]*attrs // released, not_released
	lost     map[dimutex.LossReason]*attrs
	value    string
}

type requestKey struct {
	op     string
	status int
	class  string // the error class; "" if none
}

// New returns Metrics whose instruments come from mp's Meter named
// ScopeName. For the global MeterProvider, pass otel.GetMeterProvider().
// It returns an error if mp is nil or an instrument could not be created.
func New(mp metric.MeterProvider, opts ...Option) (*Metrics, error) {
	var c config
	for _, opt := range opts {
		opt(&c)
	}
	if mp == nil {
		return nil, errors.New("dimutex/contrib/otel: New: the MeterProvider is nil (for the global one, pass otel.GetMeterProvider())")
	}
	meter := mp.Meter(ScopeName)
	m := &Metrics{
		lockAttr: lockAttrFunc(c.keepSlots, c.lockAttr),
		locks:    map[string]*lockSets{},
		reqs:     map[requestKey]*attrs{},
	}
	var errs []error
	histogram := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, desc, unit string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	m.wait = histogram("dimutex.acquire.wait",
		"Time from the call of Acquire, TryAcquire or Campaign to its success.", DefWaitBuckets)
	m.held = histogram("dimutex.lease.held",
		"How long each lease was held, recorded when it was released or lost.", DefHeldBuckets)
	m.reqDuration = histogram("dimutex.request.duration",
		"Duration of each HTTP request to GCS, retries included.", DefRequestBuckets)
	m.acquisitions = counter("dimutex.acquisitions", "Successful acquisitions.", "{acquisition}")
	m.lost = counter("dimutex.leases.lost", "Leases lost.", "{lease}")
	m.requests = counter("dimutex.requests", "HTTP requests to GCS, retries included.", "{request}")
	m.refreshes = counter("dimutex.refreshes", "Successful refreshes of leases.", "{refresh}")
	m.refreshFailures = counter("dimutex.refresh.failures",
		"Failed background refreshes, each tried again before the lease's deadline.", "{refresh}")
	m.releases = counter("dimutex.releases", "Leases ended by Release.", "{release}")
	var err error
	m.leasesHeld, err = meter.Int64UpDownCounter("dimutex.leases.held",
		metric.WithDescription("Leases held now."), metric.WithUnit("{lease}"))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
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

// The hooks have no context; the measurements are not tied to a span.
var ctx = context.Background()

func (m *Metrics) request(e dimutex.RequestEvent) {
	a := m.requestSet(e)
	m.requests.Add(ctx, 1, a.add...)
	m.reqDuration.Record(ctx, e.Duration.Seconds(), a.rec...)
}

func (m *Metrics) acquired(e dimutex.AcquireEvent) {
	s := m.lockSets(e.Lock)
	took := 0
	if e.TookOver {
		took = 1
	}
	m.acquisitions.Add(ctx, 1, s.acquired[took].add...)
	m.wait.Record(ctx, e.Waited.Seconds(), s.lock.rec...)
	m.leasesHeld.Add(ctx, 1, s.lock.add...)
}

func (m *Metrics) refreshed(e dimutex.RefreshEvent) {
	m.refreshes.Add(ctx, 1, m.lockSets(e.Lock).lock.add...)
}

func (m *Metrics) refreshFailed(e dimutex.RefreshFailedEvent) {
	m.refreshFailures.Add(ctx, 1, m.lockSets(e.Lock).lock.add...)
}

func (m *Metrics) leaseLost(e dimutex.LossEvent) {
	s := m.lockSets(e.Lock)
	reason, ok := s.lost[e.Reason]
	if !ok { // a reason this package does not know yet
		reason = newAttrs(LockKey.String(s.value), LossReasonKey.String(string(e.Reason)))
	}
	m.lost.Add(ctx, 1, reason.add...)
	m.held.Record(ctx, e.Held.Seconds(), s.lock.rec...)
	m.leasesHeld.Add(ctx, -1, s.lock.add...)
}

func (m *Metrics) released(e dimutex.ReleaseEvent) {
	s := m.lockSets(e.Lock)
	result := 0
	if e.Err != nil {
		result = 1
	}
	m.releases.Add(ctx, 1, s.released[result].add...)
	m.held.Record(ctx, e.Held.Seconds(), s.lock.rec...)
	m.leasesHeld.Add(ctx, -1, s.lock.add...)
}

// lockSets returns the attribute sets of lock, building them the first
// time.
func (m *Metrics) lockSets(lock string) *lockSets {
	value := m.lockAttr(lock)
	m.mu.RLock()
	s := m.locks[value]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	l := LockKey.String(value)
	set := func(kvs ...attribute.KeyValue) *attrs { return newAttrs(append([]attribute.KeyValue{l}, kvs...)...) }
	s = &lockSets{
		lock:     set(),
		acquired: [2]*attrs{set(TakeoverKey.Bool(false)), set(TakeoverKey.Bool(true))},
		released: [2]*attrs{set(ReleaseResultKey.String("released")), set(ReleaseResultKey.String("not_released"))},
		lost:     map[dimutex.LossReason]*attrs{},
		value:    value,
	}
	for _, r := range []dimutex.LossReason{dimutex.LossDeadline, dimutex.LossTaken, dimutex.LossDeleted, dimutex.LossOverwritten} {
		s.lost[r] = set(LossReasonKey.String(string(r)))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.locks[value]; old != nil {
		return old
	}
	m.locks[value] = s
	return s
}

// requestSet returns the attribute set of a request, building it the first
// time a request of its kind is seen.
func (m *Metrics) requestSet(e dimutex.RequestEvent) *attrs {
	k := requestKey{op: e.Op, status: e.Status}
	if e.Err != nil {
		k.class = ErrorType(e)
	}
	m.mu.RLock()
	s, ok := m.reqs[k]
	m.mu.RUnlock()
	if ok {
		return s
	}
	kvs := []attribute.KeyValue{OpKey.String(e.Op)}
	if e.Status != 0 {
		kvs = append(kvs, HTTPResponseStatusCodeKey.Int(e.Status))
	}
	if t := ErrorType(e); t != "" {
		kvs = append(kvs, ErrorTypeKey.String(t))
	}
	s = newAttrs(kvs...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.reqs[k]; ok {
		return old
	}
	m.reqs[k] = s
	return s
}

// ErrorType returns the error.type of a request: "" if it succeeded, the
// class of its transport error if no complete answer arrived, else its
// status as a string if that is 400 or more (see the package
// documentation).
func ErrorType(e dimutex.RequestEvent) string {
	switch {
	case e.Err != nil:
		if class := gcsjson.ErrorClass(e.Err); class != "" {
			return class
		}
		return "_OTHER"
	case e.Status == 0:
		return "_OTHER"
	case e.Status >= 400:
		return strconv.Itoa(e.Status)
	}
	return ""
}

// lockAttrFunc returns the function that maps a lock's location to its
// dimutex.lock value.
func lockAttrFunc(keepSlots bool, f func(string) string) func(string) string {
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
