// Package dimutextest provides an in-memory Google Cloud Storage JSON API
// server for tests, in the spirit of net/http/httptest.
//
// A Server keeps buckets and objects in memory and answers the part of the
// JSON API that a lock needs: multipart and media uploads with generation
// and metageneration preconditions, object metadata reads, conditional
// deletes, listings, and bucket creation. It answers them the way real GCS
// does, with GCS-shaped error bodies, and it can inject faults (errors,
// connection resets, truncated answers, hung requests, latency) into any
// request. It can be used in two ways:
//
//   - In memory, with no sockets: Server.Client (or Server.Transport) hands
//     each request straight to the server. Nothing touches the network and
//     the only timers are those of package time, so tests can run inside a
//     testing/synctest bubble with virtual time. Create the Server inside the
//     bubble so that its clock is the bubble's.
//   - Over a real connection: *Server is an http.Handler, so
//     httptest.NewServer(srv) serves it to another process or to a client
//     that needs a real socket.
//
// # Use with dimutex
//
// Point a Mutex at the server with its endpoint and its client:
//
//	srv := dimutextest.NewServer(dimutextest.WithBucket("locks"))
//	m, err := dimutex.NewGCS("locks", "jobs/nightly",
//		dimutex.WithEndpoint(srv.URL()),
//		dimutex.WithHTTPClient(srv.Client()))
//
// Through httptest, use the test server's URL and any client instead:
//
//	ts := httptest.NewServer(srv)
//	defer ts.Close()
//	m, err := dimutex.NewGCS("locks", "jobs/nightly", dimutex.WithEndpoint(ts.URL))
//
// # How it differs from fake-gcs-server
//
// fake-gcs-server is a general emulator; this package models only what it
// implements, but models it as GCS behaves:
//
//   - DELETE enforces ifGenerationMatch, ifGenerationNotMatch,
//     ifMetagenerationMatch and ifMetagenerationNotMatch: a mismatch is 412
//     and the object is kept. A successful DELETE is 204 with an empty body.
//   - Uploads enforce the metageneration preconditions too, and GETs enforce
//     all four.
//   - The Date header carries the server's clock in whole seconds, as GCS's
//     does, and the clock can be offset and made to run fast or slow
//     (Server.SetClock) to test clock skew.
//   - WithWriteRateLimit refuses a second mutation of one object name within
//     a second with 429 rateLimitExceeded, as GCS does.
//   - Generations are timestamps in microseconds, strictly increasing even
//     when the clock is set backwards.
//   - The in-memory transport needs no sockets and no goroutines (except to
//     model latency).
//
// # What it implements
//
//   - POST /storage/v1/b?project=P (create a bucket) and GET
//     /storage/v1/b/B (read a bucket).
//   - POST /upload/storage/v1/b/B/o with uploadType=multipart
//     (multipart/related: a JSON metadata part, then the media part) or
//     uploadType=media. The name= query parameter overrides the metadata's
//     name. Resumable uploads answer 501.
//   - GET /storage/v1/b/B/o/N (alt=json, the default, or alt=media) and
//     DELETE /storage/v1/b/B/o/N. N is one path segment: "/" in a name is
//     sent as "%2F". The optional generation= parameter names the live
//     generation; another is 404, since there are no object versions.
//   - GET /storage/v1/b/B/o with prefix, delimiter, maxResults (default and
//     cap 1000) and pageToken. Listings are strongly consistent, sorted by
//     name, and omit "items" when there are none.
//
// The fields= and projection= parameters are ignored: answers always carry
// the full resource. Paths must start at the server's root, with no
// prefix. A route this package does not implement answers 404, or 501 for a
// method it does not implement on a known path. No authentication is
// checked; inject 401 or 403 with a Fault to test those.
//
// The order of checks for a mutation is: the request's form (400), the
// bucket (404), for a delete the object (404), then the rate limit (429),
// then the preconditions (412). A mutation refused for any reason changes
// nothing and does not count towards the rate limit.
//
// # Faults over a real connection
//
// Resets and truncated answers take over the connection with
// http.Hijacker, which only HTTP/1 offers; under HTTP/2 they abort the
// stream instead. Note that net/http's Transport silently retries, once, a
// GET (or a request with an Idempotency-Key header) that fails on a reused
// keep-alive connection before any byte of the answer arrived. Over
// httptest such a retry reaches the server as a second request; the
// in-memory transport never retries.
package dimutextest
