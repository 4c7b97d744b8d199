package prometheus_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"

	"github.com/dimutex/dimutex"
	dimutexprom "github.com/dimutex/dimutex/contrib/prometheus"
	"github.com/dimutex/dimutex/dimutextest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Register the metrics, pass their Trace to the lock, and serve them. Here
// the lock lives in an in-memory GCS, and the scrape is simulated.
func Example() {
	metrics := dimutexprom.New(dimutexprom.Opts{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{}) // serve it at /metrics

	srv := dimutextest.NewServer(dimutextest.WithBucket("locks"))
	m, err := dimutex.NewGCS("locks", "jobs/nightly",
		dimutex.WithTrace(metrics.Trace()),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	err = m.Do(context.Background(), func(ctx context.Context) error {
		return nil // the work
	})
	if err != nil {
		log.Fatal(err)
	}

	scrape := httptest.NewRecorder()
	handler.ServeHTTP(scrape, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(scrape.Body.String()) {
		// Durations vary from run to run: show counts only.
		if !strings.HasPrefix(line, "#") && !strings.Contains(line, "_bucket") && !strings.Contains(line, "_sum") {
			fmt.Print(line)
		}
	}
	// Output:
	// dimutex_acquire_wait_seconds_count{lock="gs://locks/jobs/nightly"} 1
	// dimutex_acquisitions_total{lock="gs://locks/jobs/nightly",takeover="false"} 1
	// dimutex_lease_held_seconds_count{lock="gs://locks/jobs/nightly"} 1
	// dimutex_leases_held{lock="gs://locks/jobs/nightly"} 0
	// dimutex_releases_total{lock="gs://locks/jobs/nightly",result="released"} 1
	// dimutex_request_duration_seconds_count{code="200",op="insert"} 1
	// dimutex_request_duration_seconds_count{code="204",op="delete"} 1
	// dimutex_requests_total{code="200",op="insert"} 1
	// dimutex_requests_total{code="204",op="delete"} 1
}

// Chain combines the metrics' hooks with hooks of your own: here, a log
// line when a lease is lost.
func ExampleChain() {
	metrics := dimutexprom.New(dimutexprom.Opts{})
	prometheus.MustRegister(metrics)
	alert := &dimutex.Trace{
		Lost: func(e dimutex.LossEvent) {
			slog.Error("lease lost", "lock", e.Lock, "reason", e.Reason, "held", e.Held)
		},
	}
	_, err := dimutex.NewGCS("bucket", "jobs/nightly", dimutex.WithTrace(dimutexprom.Chain(metrics.Trace(), alert)))
	if err != nil {
		log.Fatal(err)
	}
}

// The slots of a semaphore share its series unless Opts.KeepSlots is set.
func ExampleStripSlot() {
	fmt.Println(dimutexprom.StripSlot("gs://locks/pool/slot-007"))
	fmt.Println(dimutexprom.StripSlot("gs://locks/jobs/nightly"))
	// Output:
	// gs://locks/pool
	// gs://locks/jobs/nightly
}
