package otel_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"slices"

	"github.com/dimutex/dimutex"
	dimutexotel "github.com/dimutex/dimutex/contrib/otel"
	"github.com/dimutex/dimutex/dimutextest"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Create the metrics from a MeterProvider and pass their Trace to the
// lock. Here the provider is the SDK's with a ManualReader, where a
// program would have an exporter, and the lock lives in an in-memory GCS.
func Example() {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	metrics, err := dimutexotel.New(provider)
	if err != nil {
		log.Fatal(err)
	}

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

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, metric := range sm.Metrics {
			switch data := metric.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s{%s} %d", metric.Name, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Value))
				}
			case metricdata.Histogram[float64]:
				// Durations vary from run to run: show counts only.
				for _, p := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s{%s} count=%d", metric.Name, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Count))
				}
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// dimutex.acquire.wait{dimutex.lock=gs://locks/jobs/nightly} count=1
	// dimutex.acquisitions{dimutex.lock=gs://locks/jobs/nightly,dimutex.takeover=false} 1
	// dimutex.lease.held{dimutex.lock=gs://locks/jobs/nightly} count=1
	// dimutex.leases.held{dimutex.lock=gs://locks/jobs/nightly} 0
	// dimutex.releases{dimutex.lock=gs://locks/jobs/nightly,dimutex.release.result=released} 1
	// dimutex.request.duration{dimutex.op=delete,http.response.status_code=204} count=1
	// dimutex.request.duration{dimutex.op=insert,http.response.status_code=200} count=1
	// dimutex.requests{dimutex.op=delete,http.response.status_code=204} 1
	// dimutex.requests{dimutex.op=insert,http.response.status_code=200} 1
}

// Chain combines the metrics' hooks with hooks of your own: here, a log
// line when a lease is lost.
func ExampleChain() {
	metrics, err := dimutexotel.New(otel.GetMeterProvider())
	if err != nil {
		log.Fatal(err)
	}
	alert := &dimutex.Trace{
		Lost: func(e dimutex.LossEvent) {
			slog.Error("lease lost", "lock", e.Lock, "reason", e.Reason, "held", e.Held)
		},
	}
	_, err = dimutex.NewGCS("bucket", "jobs/nightly", dimutex.WithTrace(dimutexotel.Chain(metrics.Trace(), alert)))
	if err != nil {
		log.Fatal(err)
	}
}

// The slots of a semaphore share its series unless WithKeepSlots is given.
func ExampleStripSlot() {
	fmt.Println(dimutexotel.StripSlot("gs://locks/pool/slot-007"))
	fmt.Println(dimutexotel.StripSlot("gs://locks/jobs/nightly"))
	// Output:
	// gs://locks/pool
	// gs://locks/jobs/nightly
}

// A View of the SDK changes the advised buckets.
func ExampleNew_view() {
	view := sdkmetric.NewView(
		sdkmetric.Instrument{Name: "dimutex.acquire.wait"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
			Boundaries: []float64{0.1, 1, 10, 100},
		}},
	)
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()), sdkmetric.WithView(view))
	if _, err := dimutexotel.New(provider); err != nil {
		log.Fatal(err)
	}
}
