package otel

import "github.com/dimutex/dimutex"

// Chain returns a Trace that calls the hooks of each of traces in turn, for
// a lock that reports to this package and to hooks of your own:
//
//	dimutex.WithTrace(dimutexotel.Chain(metrics.Trace(), &dimutex.Trace{Lost: alert}))
//
// Nil traces and nil hooks are skipped; a hook that none of traces sets is
// left nil in the result, so it costs nothing. Chain returns nil if no
// trace sets any hook. The hooks are run synchronously, in the order of
// traces; like every hook, each must be quick and must not block.
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
