package prometheus

import (
	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/internal/tracechain"
)

// Chain returns a Trace that calls the hooks of each of traces in turn, for
// a lock that reports to this package and to hooks of your own:
//
//	dimutex.WithTrace(dimutexprom.Chain(metrics.Trace(), &dimutex.Trace{Lost: alert}))
//
// Nil traces and nil hooks are skipped; a hook that none of traces sets is
// left nil in the result, so it costs nothing. Chain returns nil if no
// trace sets any hook. The hooks are run synchronously, in the order of
// traces; like every hook, each must be quick and must not block.
func Chain(traces ...*dimutex.Trace) *dimutex.Trace { return tracechain.Chain(traces...) }
