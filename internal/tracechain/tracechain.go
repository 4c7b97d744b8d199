// Package tracechain joins dimutex.Traces, for the Chain of each metrics
// adapter under contrib/.
package tracechain

import "github.com/dimutex/dimutex"

// Chain returns a Trace that calls the hooks of each of traces in turn.
// Nil traces and nil hooks are skipped; a hook that none of traces sets is
// left nil. It returns nil if no trace sets any hook.
func Chain(traces ...*dimutex.Trace) *dimutex.Trace {
	var c dimutex.Trace
	var set bool
	for _, t := range traces {
		if t == nil {
			continue
		}
		set = chain(&c.Request, t.Request) || set
		set = chain(&c.Acquired, t.Acquired) || set
		set = chain(&c.Refreshed, t.Refreshed) || set
		set = chain(&c.RefreshFailed, t.RefreshFailed) || set
		set = chain(&c.Lost, t.Lost) || set
		set = chain(&c.Released, t.Released) || set
	}
	if !set {
		return nil
	}
	return &c
}

// chain makes *hook call next after what it called before. It reports
// whether next is set.
func chain[E any](hook *func(E), next func(E)) bool {
	if next == nil {
		return false
	}
	if prev := *hook; prev != nil {
		*hook = func(e E) { prev(e); next(e) }
	} else {
		*hook = next
	}
	return true
}
