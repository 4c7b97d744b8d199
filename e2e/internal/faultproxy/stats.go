package faultproxy

import (
	"maps"
	"slices"
	"time"
)

// Stats is a snapshot of a Proxy's counters, from Proxy.Stats.
type Stats struct {
	// Requests is how many requests the proxy received.
	Requests int
	// ByMethod counts Requests by HTTP method, such as "POST".
	ByMethod map[string]int
	// Forwarded is how many requests the proxy sent (or tried to send) on
	// to the target, including those of ResetAfter and Truncate. The
	// metadata reads of WithDeletePreconditions are not counted.
	Forwarded int
	// Faults counts the rules that fired, by Fault. A fault is counted when
	// it is decided, even if the client then gives up during its Delay.
	Faults map[Fault]int
	// Authorized is how many requests carried an Authorization header
	// (even an empty one). Against an emulator it should stay 0.
	Authorized int
	// Canceled is how many requests the client gave up on before the proxy
	// forwarded or answered them: during a Delay, Latency or Hang, or while
	// still sending the body.
	Canceled int
	// PreconditionFailed is how many DELETEs WithDeletePreconditions
	// answered itself (400, 404 or 412) instead of forwarding.
	PreconditionFailed int
}

// FaultsTotal returns the number of faults injected, of any kind.
func (s Stats) FaultsTotal() int {
	n := 0
	for _, c := range s.Faults {
		n += c
	}
	return n
}

func newStats() Stats {
	return Stats{ByMethod: map[string]int{}, Faults: map[Fault]int{}}
}

// Entry records one request in the proxy's log (see Proxy.Log).
type Entry struct {
	// Seq numbers the requests in order of arrival, from 1; it is the order
	// in which rules were applied to them.
	Seq uint64
	// Time is when the request arrived.
	Time time.Time
	// Method, Path and Query are the request's method, path as received
	// (still percent-encoded) and raw query.
	Method, Path, Query string

	// Rule is the rule that fired, or 0 if none did.
	Rule RuleID
	// Fault is the fault of that rule, or None.
	Fault Fault

	// Forwarded reports whether the request was sent to the target (and so
	// may have been applied).
	Forwarded bool
	// TargetStatus is the status the proxy got for the request: from the
	// target, or from the check of WithDeletePreconditions. 0 if none.
	TargetStatus int
	// Status is the status line sent to the client, or 0 if none was
	// (reset, hang, client gone). For Truncate it is the status that went
	// with the cut body.
	Status int
	// Canceled reports that the client gave up before the proxy forwarded
	// or answered the request.
	Canceled bool
}

// Stats returns a snapshot of the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.ByMethod = maps.Clone(p.stats.ByMethod)
	s.Faults = maps.Clone(p.stats.Faults)
	return s
}

// Log returns a copy of the most recent log entries (see WithLogLimit) in
// order of arrival. A request is logged when the proxy is done with it, so
// one still in progress is not there yet.
func (p *Proxy) Log() []Entry {
	p.mu.Lock()
	log := slices.Clone(p.log)
	p.mu.Unlock()
	slices.SortFunc(log, func(a, b Entry) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return log
}

// ResetStats sets the counters to zero and empties the log. Rules, their
// counts (see Fired) and the random source are not touched, and Seq goes
// on from where it was.
func (p *Proxy) ResetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = newStats()
	p.log = nil
	p.logNext = 0
}

// count applies f to the counters under the lock.
func (p *Proxy) count(f func(*Stats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

// record adds e to the log, dropping the oldest entry if the log is full.
func (p *Proxy) record(e *Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.logLimit <= 0:
	case len(p.log) < p.logLimit:
		p.log = append(p.log, *e)
	default:
		p.log[p.logNext] = *e
		p.logNext = (p.logNext + 1) % p.logLimit
	}
}
