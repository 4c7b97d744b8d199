package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestDifferentialConformance sends the same raw JSON API requests (plain
// net/http, no library) to every backend and compares what each answers
// with what GCS answers, case by case. Every case reduces its answers to a
// few observations (status, error reason, whether a generation moved, ...),
// each with the value GCS gives. An emulator that answers otherwise must
// have that difference listed in knownDeviations, with the reason; a new
// difference fails the test, and so does a listed one that is no longer
// seen. The in-memory GCS (backend "memory", package dimutextest) has no
// deviation listed, so it must match GCS, and the testbench wherever the
// testbench is not itself listed as deviating; the last subtest checks
// that directly. (This file is not conformance_test.go, which runs Google's
// retry conformance cases through the testbench's fault injection.)
func TestDifferentialConformance(t *testing.T) {
	t.Parallel()
	seen := map[string]observations{}
	for _, b := range backend.All {
		// One after the other, so that the comparison below sees them all.
		t.Run(b.Name, func(t *testing.T) {
			srv := b.Start(t)
			api := &rawAPI{t: t, root: srv.URL, bucket: srv.Bucket, missingBucket: srv.Bucket + "-missing",
				newBucket: func() string { return srv.NewBucket(t) }}
			got := observations{}
			for _, c := range conformanceCases {
				for k, v := range c.run(api) {
					got[c.name+"."+k] = v
				}
				for k := range c.want {
					if _, ok := got[c.name+"."+k]; !ok {
						t.Errorf("case %s: no observation %q", c.name, k)
					}
				}
			}
			seen[b.Name] = got
			checkAgainstGCS(t, b.Name, got)
		})
	}
	t.Run("memory=testbench", func(t *testing.T) {
		mem, tb := seen[backend.Memory.Name], seen[backend.Testbench.Name]
		if mem == nil {
			t.Skip("the memory backend did not run")
		}
		if tb == nil {
			why := "the testbench did not run"
			if backend.Testbench.Unavailable != nil {
				if u := backend.Testbench.Unavailable(); u != "" {
					why = u
				}
			}
			t.Skip("no comparison of the in-memory GCS with the testbench: " + why)
		}
		same := 0
		for _, k := range slices.Sorted(maps.Keys(mem)) {
			if _, dev := deviation(backend.Testbench.Name, k); dev != nil {
				continue // the testbench deviates from GCS here, and memory follows GCS
			}
			if mem[k] != tb[k] {
				t.Errorf("%s: memory %q, testbench %q", k, mem[k], tb[k])
				continue
			}
			same++
		}
		t.Logf("the in-memory GCS answers as the testbench in %d of %d observations; the other %d are the testbench's listed deviations",
			same, len(mem), len(mem)-same)
	})
	t.Run("table", func(t *testing.T) {
		// The observations side by side, for the record.
		var b strings.Builder
		fmt.Fprintf(&b, "| observation | GCS | memory | fake | testbench |\n|---|---|---|---|---|\n")
		want := observations{}
		for _, c := range conformanceCases {
			for k, v := range c.want {
				want[c.name+"."+k] = v
			}
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			fmt.Fprintf(&b, "| %s | %s |", k, want[k])
			for _, name := range []string{"memory", "fake", "testbench"} {
				v, ok := seen[name][k]
				switch {
				case !ok:
					v = "(not run)"
				case v == want[k]:
					v = "="
				}
				fmt.Fprintf(&b, " %s |", v)
			}
			b.WriteByte('\n')
		}
		t.Logf("\n%s", b.String())
	})
}

// observations maps "case.observation" to what a backend answered.
type observations map[string]string

// checkAgainstGCS compares one backend's observations with GCS's, allowing
// exactly the backend's listed deviations.
func checkAgainstGCS(t *testing.T, name string, got observations) {
	t.Helper()
	used := map[*knownDeviation]bool{}
	for _, c := range conformanceCases {
		for _, k := range slices.Sorted(maps.Keys(c.want)) {
			key := c.name + "." + k
			want, why := c.want[k], "GCS"
			if v, dev := deviation(name, key); dev != nil {
				used[dev] = true
				want, why = v, "a known deviation: "+dev.why
				if got[key] == c.want[k] && dev.sometimes {
					continue
				}
				if got[key] == c.want[k] && v != c.want[k] {
					t.Errorf("%s = %q, as GCS answers: the deviation %q is gone; remove it from knownDeviations", key, got[key], dev.why)
					continue
				}
			}
			if got[key] != want {
				t.Errorf("%s = %q, want %q (%s)", key, got[key], want, why)
			}
		}
	}
	for i := range knownDeviations {
		d := &knownDeviations[i]
		if d.backend == name && !used[d] {
			t.Errorf("known deviation %q matches no observation (%s)", d.why, d.key)
		}
	}
}

// knownDeviation is one way an emulator is known to answer otherwise than
// GCS: the observations whose key matches the pattern key (path.Match) get
// value instead of GCS's.
type knownDeviation struct {
	backend, key, value, why string
	// sometimes: the backend may also answer as GCS does.
	sometimes bool
}

// deviation returns the value that backend is known to give for key, and
// the deviation; nil if none is listed.
func deviation(backendName, key string) (string, *knownDeviation) {
	for i := range knownDeviations {
		d := &knownDeviations[i]
		if ok, _ := path.Match(d.key, key); ok && d.backend == backendName {
			return d.value, d
		}
	}
	return "", nil
}

// The emulators' known deviations from GCS: the expected differences. Most
// are recorded in gcs-facts.md and ../shared/testbench/README.md; this
// test found two more (fake-gcs-server's updated on a create, the
// testbench's maxResults). The in-memory GCS has none.
var knownDeviations = []knownDeviation{
	{"fake", "delete-wrong-gen.status", "200", "fake-gcs-server's DELETE ignores ifGenerationMatch", false},
	{"fake", "delete-wrong-gen.reason", "-", "fake-gcs-server's DELETE ignores ifGenerationMatch", false},
	{"fake", "delete-wrong-gen.body", "null", "fake-gcs-server's DELETE ignores ifGenerationMatch", false},
	{"fake", "delete-wrong-gen.object", "gone", "fake-gcs-server's DELETE ignores ifGenerationMatch", false},
	{"fake", "delete-right-gen.status", "200", "fake-gcs-server answers a DELETE with 200 and the body null", false},
	{"fake", "delete-right-gen.body", "null", "fake-gcs-server answers a DELETE with 200 and the body null", false},
	{"fake", "create.updated", "timeCreated + under 1 ms", "fake-gcs-server stamps a new object's updated tens of µs after its timeCreated (the same instant is possible, and accepted)", true},

	{"testbench", "*.error", "code and message only (the message is JSON in a string)", "the testbench's error bodies are not GCS-shaped", false},
	{"testbench", "*.reason", "-", "the testbench's error bodies carry no reason", false},
	{"testbench", "delete-right-gen.status", "200", "the testbench answers a DELETE with 200 and an empty body", false},
	{"testbench", "create.generation", "a count from the server's start in milliseconds", "the testbench's generations count up by one from its start time in ms", false},
	{"testbench", "generations.steps", "+1 per version, and +1 per refused upload", "the testbench's generations count up by one from its start time in ms", false},
	{"testbench", "list.page1.items", "l/a,l/b,l/c,l/sub/d", "the testbench ignores maxResults: one page, with no nextPageToken", false},
	{"testbench", "list.page1.next", "false", "the testbench ignores maxResults: one page, with no nextPageToken", false},
	{"testbench", "list.page2.*", "(no page token)", "the testbench ignores maxResults: one page, with no nextPageToken", false},
	{"testbench", "create.metadata", "as sent, plus x_emulator_upload, x_testbench_upload", "the testbench adds x_emulator_* and x_testbench_* keys to metadata", false},
}

// A conformance case runs requests against a fresh part of one bucket and
// reduces the answers to observations. want is what GCS answers.
type conformanceCase struct {
	name string
	run  func(api *rawAPI) observations
	want observations
}

// Observations that several cases share, as GCS gives them.
const (
	errGCS     = "GCS-shaped"
	dateOK     = "IMF-fixdate GMT, server time truncated to the second"
	kept       = "kept"
	gone       = "gone"
	absent     = "absent"
	noBody     = "empty"
	generation = "a timestamp in microseconds"
)

var conformanceCases = []conformanceCase{
	{
		name: "create",
		run: func(api *rawAPI) observations {
			before := time.Now()
			a := api.upload("c/obj", "0", map[string]string{"k": "v", "dimutex-lease": "abc"})
			o := a.object(api.t)
			obs := observations{"status": a.statusText(), "date": a.dateCheck(), "generation": generationKind(o, before),
				"metageneration": o.Metageneration, "metadata": metadataCheck(o.Metadata, map[string]string{"k": "v", "dimutex-lease": "abc"})}
			switch d := o.updated().Sub(o.timeCreated()); {
			case o.Updated == "" || o.TimeCreated == "":
				obs["updated"] = "missing"
			case d == 0:
				obs["updated"] = "= timeCreated"
			case d > 0 && d < time.Millisecond:
				obs["updated"] = "timeCreated + under 1 ms"
			default:
				obs["updated"] = fmt.Sprintf("updated %s, timeCreated %s", o.Updated, o.TimeCreated)
			}
			// updated falls in the second that Date names, give or take the
			// round trip (a loaded machine may answer a request in a later
			// second than it handled it in) and half a second of slack.
			rtt := a.received.Sub(a.sent)
			if d, u := a.date(), o.updated(); !d.IsZero() && !u.IsZero() && u.Sub(d) > -rtt-time.Second/2 && u.Sub(d) < 3*time.Second/2+rtt {
				obs["updated vs Date"] = "in the Date's second"
			} else {
				obs["updated vs Date"] = fmt.Sprintf("updated %v, Date %v", u, d)
			}
			g := api.get("c/obj")
			obs["get.status"] = g.statusText()
			obs["get.generation"] = "same as the upload's"
			if g.object(api.t).Generation != o.Generation {
				obs["get.generation"] = "differs"
			}
			return obs
		},
		want: observations{"status": "200", "date": dateOK, "generation": generation, "metageneration": "1",
			"metadata": "as sent", "updated": "= timeCreated", "updated vs Date": "in the Date's second",
			"get.status": "200", "get.generation": "same as the upload's"},
	},
	{
		name: "create-existing",
		run: func(api *rawAPI) observations {
			first := api.upload("ce/obj", "0", nil).object(api.t)
			a := api.upload("ce/obj", "0", nil)
			return a.errorObs(observations{"object": api.state("ce/obj", first.Generation)})
		},
		want: observations{"status": "412", "reason": "conditionNotMet", "error": errGCS, "date": dateOK, "object": kept},
	},
	{
		name: "cas-current",
		run: func(api *rawAPI) observations {
			first := api.upload("cc/obj", "0", nil).object(api.t)
			time.Sleep(20 * time.Millisecond) // so that a clock can move
			a := api.upload("cc/obj", first.Generation, nil)
			o := a.object(api.t)
			return observations{"status": a.statusText(), "date": a.dateCheck(),
				"generation": compareGen(first.Generation, o.Generation), "updated": compareTime(first.updated(), o.updated()),
				"metageneration": o.Metageneration}
		},
		want: observations{"status": "200", "date": dateOK, "generation": "new, larger", "updated": "later", "metageneration": "1"},
	},
	{
		name: "cas-stale",
		run: func(api *rawAPI) observations {
			first := api.upload("cs/obj", "0", nil).object(api.t)
			second := api.upload("cs/obj", first.Generation, nil).object(api.t)
			a := api.upload("cs/obj", first.Generation, nil)
			return a.errorObs(observations{"object": api.state("cs/obj", second.Generation)})
		},
		want: observations{"status": "412", "reason": "conditionNotMet", "error": errGCS, "date": dateOK, "object": kept},
	},
	{
		name: "cas-missing",
		run: func(api *rawAPI) observations {
			a := api.upload("cm/obj", "1234567", nil)
			return a.errorObs(observations{"object": api.state("cm/obj", "")})
		},
		want: observations{"status": "412", "reason": "conditionNotMet", "error": errGCS, "date": dateOK, "object": absent},
	},
	{
		name: "upload-missing-bucket",
		run: func(api *rawAPI) observations {
			return api.uploadTo(api.missingBucket, "ub/obj", "0").errorObs(nil)
		},
		want: observations{"status": "404", "reason": "notFound", "error": errGCS, "date": dateOK},
	},
	{
		name: "delete-wrong-gen",
		run: func(api *rawAPI) observations {
			o := api.upload("dw/obj", "0", nil).object(api.t)
			wrong, _ := strconv.ParseInt(o.Generation, 10, 64)
			a := api.delete("dw/obj", strconv.FormatInt(wrong+1000, 10))
			obs := observations{"status": a.statusText(), "date": a.dateCheck(), "object": api.state("dw/obj", o.Generation), "body": a.bodyKind()}
			obs["reason"], _ = a.reason()
			return obs
		},
		want: observations{"status": "412", "reason": "conditionNotMet", "date": dateOK, "object": kept, "body": "error"},
	},
	{
		name: "delete-right-gen",
		run: func(api *rawAPI) observations {
			o := api.upload("dr/obj", "0", nil).object(api.t)
			a := api.delete("dr/obj", o.Generation)
			return observations{"status": a.statusText(), "body": a.bodyKind(), "date": a.dateCheck(), "object": api.state("dr/obj", o.Generation)}
		},
		want: observations{"status": "204", "body": noBody, "date": dateOK, "object": gone},
	},
	{
		name: "delete-missing",
		run: func(api *rawAPI) observations {
			return api.delete("dm/obj", "1234567").errorObs(nil)
		},
		want: observations{"status": "404", "reason": "notFound", "error": errGCS, "date": dateOK},
	},
	{
		// Every write makes a new generation, a larger one in practice:
		// create, three overwrites, a refused upload, a fourth overwrite,
		// a delete and a create again.
		name: "generations",
		run: func(api *rawAPI) observations {
			var gens []int64
			add := func(o *objectResource) {
				g, _ := strconv.ParseInt(o.Generation, 10, 64)
				gens = append(gens, g)
			}
			o := api.upload("g/obj", "0", nil).object(api.t)
			add(o)
			for range 3 {
				o = api.upload("g/obj", o.Generation, nil).object(api.t)
				add(o)
			}
			refused := api.upload("g/obj", "0", nil).statusText()
			o = api.upload("g/obj", o.Generation, nil).object(api.t)
			add(o)
			del := api.delete("g/obj", o.Generation).status
			o = api.upload("g/obj", "0", nil).object(api.t)
			add(o)
			obs := observations{"refused": refused, "deleted": fmt.Sprint(del >= 200 && del < 300), "order": "strictly increasing"}
			var steps []string
			for i := 1; i < len(gens); i++ {
				if gens[i] <= gens[i-1] {
					obs["order"] = fmt.Sprint(gens)
				}
				steps = append(steps, strconv.FormatInt(gens[i]-gens[i-1], 10))
			}
			// A counter steps by 1 per version; a clock in µs by more.
			switch strings.Join(steps, ",") {
			case "1,1,1,1,1":
				obs["steps"] = "+1 per version"
			case "1,1,1,2,1":
				obs["steps"] = "+1 per version, and +1 per refused upload"
			default:
				obs["steps"] = "timestamps"
				for _, s := range steps {
					if n, _ := strconv.Atoi(s); n < 10 {
						obs["steps"] = "steps " + strings.Join(steps, ",")
					}
				}
			}
			return obs
		},
		want: observations{"refused": "412", "deleted": "true", "order": "strictly increasing", "steps": "timestamps"},
	},
	{
		name: "get-missing-object",
		run:  func(api *rawAPI) observations { return api.get("gm/nothing").errorObs(nil) },
		want: observations{"status": "404", "reason": "notFound", "error": errGCS, "date": dateOK},
	},
	{
		name: "get-object-missing-bucket",
		run: func(api *rawAPI) observations {
			return api.do(http.MethodGet, "/storage/v1/b/"+api.missingBucket+"/o/x", nil, "", nil).errorObs(nil)
		},
		want: observations{"status": "404", "reason": "notFound", "error": errGCS, "date": dateOK},
	},
	{
		name: "get-missing-bucket",
		run: func(api *rawAPI) observations {
			return api.do(http.MethodGet, "/storage/v1/b/"+api.missingBucket, nil, "", nil).errorObs(nil)
		},
		want: observations{"status": "404", "reason": "notFound", "error": errGCS, "date": dateOK},
	},
	{
		name: "get-bucket",
		run: func(api *rawAPI) observations {
			a := api.do(http.MethodGet, "/storage/v1/b/"+api.bucket, nil, "", nil)
			var bk struct{ Kind, Name string }
			json.Unmarshal(a.body, &bk)
			return observations{"status": a.statusText(), "date": a.dateCheck(), "kind": bk.Kind, "name": fmt.Sprint(bk.Name == api.bucket)}
		},
		want: observations{"status": "200", "date": dateOK, "kind": "storage#bucket", "name": "true"},
	},
	{
		// Objects created out of order, in a bucket of their own; lists
		// come back sorted by name.
		name: "list",
		run: func(api *rawAPI) observations {
			api = api.inBucket(api.newBucket())
			gens := map[string]string{}
			for _, n := range []string{"l/c", "l/a", "l/sub/d", "m/x", "l/b", "l"} {
				gens[n] = api.upload(n, "0", map[string]string{"k": n}).object(api.t).Generation
			}
			obs := observations{}
			all := api.list("l/", "", "", "")
			obs["all.status"], obs["all.date"] = all.statusText(), all.dateCheck()
			page := all.listPage(api.t)
			obs["all.kind"], obs["all.items"], obs["all.next"] = page.Kind, page.names(), fmt.Sprint(page.NextPageToken != "")
			obs["all.fields"] = "generation and metadata as written"
			for _, it := range page.Items {
				if it.Generation != gens[it.Name] || it.Metadata["k"] != it.Name || it.Updated == "" {
					obs["all.fields"] = fmt.Sprintf("%s: generation %s (wrote %s), metadata %v", it.Name, it.Generation, gens[it.Name], it.Metadata)
				}
			}
			p1 := api.list("l/", "2", "", "").listPage(api.t)
			obs["page1.items"], obs["page1.next"] = p1.names(), fmt.Sprint(p1.NextPageToken != "")
			obs["page2.items"], obs["page2.next"] = "(no page token)", "(no page token)"
			if p1.NextPageToken != "" {
				p2 := api.list("l/", "2", p1.NextPageToken, "").listPage(api.t)
				obs["page2.items"], obs["page2.next"] = p2.names(), fmt.Sprint(p2.NextPageToken != "")
			}
			d := api.list("l/", "", "", "/").listPage(api.t)
			obs["delimiter.items"], obs["delimiter.prefixes"] = d.names(), strings.Join(d.Prefixes, ",")
			none := api.list("zz/", "", "", "")
			obs["none.status"], obs["none.items"] = none.statusText(), none.listPage(api.t).names()
			obs["no-prefix.items"] = api.list("", "", "", "").listPage(api.t).names()
			return obs
		},
		want: observations{
			"all.status": "200", "all.date": dateOK, "all.kind": "storage#objects", "all.items": "l/a,l/b,l/c,l/sub/d", "all.next": "false",
			"all.fields":  "generation and metadata as written",
			"page1.items": "l/a,l/b", "page1.next": "true", "page2.items": "l/c,l/sub/d", "page2.next": "false",
			"delimiter.items": "l/a,l/b,l/c", "delimiter.prefixes": "l/sub/",
			"none.status": "200", "none.items": "(none)",
			"no-prefix.items": "l,l/a,l/b,l/c,l/sub/d,m/x",
		},
	},
	{
		name: "list-missing-bucket",
		run: func(api *rawAPI) observations {
			return api.do(http.MethodGet, "/storage/v1/b/"+api.missingBucket+"/o", url.Values{"prefix": {"x"}}, "", nil).errorObs(nil)
		},
		want: observations{"status": "404", "reason": "notFound", "error": errGCS, "date": dateOK},
	},
}

// rawAPI sends JSON API requests with plain net/http to one backend. Each
// case uses object names of its own in the one bucket, so cases cannot
// disturb each other, and every list case lists its own prefix.
type rawAPI struct {
	t             *testing.T
	root, bucket  string
	missingBucket string
	newBucket     func() string // creates another empty bucket
	client        http.Client
}

// inBucket returns api sending to another bucket.
func (api *rawAPI) inBucket(bucket string) *rawAPI {
	return &rawAPI{t: api.t, root: api.root, bucket: bucket, missingBucket: api.missingBucket, newBucket: api.newBucket}
}

// answer is one HTTP answer, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
	// sent and received bracket the request, by the local clock, which
	// is the emulators' clock too.
	sent, received time.Time
}

func (api *rawAPI) do(method, escapedPath string, q url.Values, contentType string, body []byte) answer {
	api.t.Helper()
	u := api.root + escapedPath
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		api.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	api.client.Timeout = 30 * time.Second
	sent := time.Now()
	resp, err := api.client.Do(req)
	if err != nil {
		api.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		api.t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data, sent: sent, received: time.Now()}
}

// upload writes name with a multipart upload, with ifGenerationMatch=ifGen
// unless ifGen is "".
func (api *rawAPI) upload(name, ifGen string, metadata map[string]string) answer {
	return api.uploadMeta(api.bucket, name, ifGen, metadata)
}

func (api *rawAPI) uploadTo(bucket, name, ifGen string) answer {
	return api.uploadMeta(bucket, name, ifGen, nil)
}

func (api *rawAPI) uploadMeta(bucket, name, ifGen string, metadata map[string]string) answer {
	api.t.Helper()
	res := map[string]any{"name": name, "contentType": "text/plain"}
	if metadata != nil {
		res["metadata"] = metadata
	}
	md, _ := json.Marshal(res)
	const boundary = "conformance-boundary"
	var body bytes.Buffer
	fmt.Fprintf(&body, "--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n%s\r\n", boundary, md)
	fmt.Fprintf(&body, "--%s\r\nContent-Type: text/plain\r\n\r\nbody of %s\r\n--%s--\r\n", boundary, name, boundary)
	q := url.Values{"uploadType": {"multipart"}, "name": {name}}
	if ifGen != "" {
		q.Set("ifGenerationMatch", ifGen)
	}
	return api.do(http.MethodPost, "/upload/storage/v1/b/"+url.PathEscape(bucket)+"/o", q,
		"multipart/related; boundary="+boundary, body.Bytes())
}

func (api *rawAPI) get(name string) answer {
	return api.do(http.MethodGet, "/storage/v1/b/"+url.PathEscape(api.bucket)+"/o/"+url.PathEscape(name), nil, "", nil)
}

func (api *rawAPI) delete(name, ifGen string) answer {
	var q url.Values
	if ifGen != "" {
		q = url.Values{"ifGenerationMatch": {ifGen}}
	}
	return api.do(http.MethodDelete, "/storage/v1/b/"+url.PathEscape(api.bucket)+"/o/"+url.PathEscape(name), q, "", nil)
}

func (api *rawAPI) list(prefix, maxResults, pageToken, delimiter string) answer {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if maxResults != "" {
		q.Set("maxResults", maxResults)
	}
	if pageToken != "" {
		q.Set("pageToken", pageToken)
	}
	if delimiter != "" {
		q.Set("delimiter", delimiter)
	}
	return api.do(http.MethodGet, "/storage/v1/b/"+url.PathEscape(api.bucket)+"/o", q, "", nil)
}

// state reads name and says whether it is still at generation gen (kept),
// gone after having been (gone), or absent when gen is "".
func (api *rawAPI) state(name, gen string) string {
	a := api.get(name)
	switch {
	case a.status == http.StatusNotFound && gen == "":
		return absent
	case a.status == http.StatusNotFound:
		return gone
	case a.status != http.StatusOK:
		return "GET " + a.statusText()
	}
	if o := a.object(api.t); o.Generation != gen {
		return "changed: generation " + o.Generation
	}
	return kept
}

func (a answer) statusText() string { return strconv.Itoa(a.status) }

// date returns the answer's Date, or the zero time.
func (a answer) date() time.Time {
	d, err := http.ParseTime(a.header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	return d
}

// dateCheck describes the Date header.
func (a answer) dateCheck() string {
	raw := a.header.Get("Date")
	if raw == "" {
		return "missing"
	}
	d, err := time.Parse(http.TimeFormat, raw)
	if err != nil {
		return fmt.Sprintf("not IMF-fixdate in GMT: %q", raw)
	}
	// A whole second of the server's clock, truncated, not rounded: from
	// the second in which the request was sent to the answer's arrival.
	if d.Before(a.sent.Truncate(time.Second)) || d.After(a.received) {
		return fmt.Sprintf("%s, outside [%s, %s]", raw, a.sent.UTC().Format(time.RFC3339Nano), a.received.UTC().Format(time.RFC3339Nano))
	}
	return dateOK
}

// bodyKind describes a body: empty, null, an object, an error.
func (a answer) bodyKind() string {
	s := strings.TrimSpace(string(a.body))
	switch {
	case s == "":
		return noBody
	case s == "null":
		return "null"
	case strings.HasPrefix(s, `{"error"`):
		return "error"
	}
	return "other: " + s[:min(len(s), 40)]
}

// reason returns the reason of a GCS-shaped error body ("-" if there is
// none), and describes the body's shape.
func (a answer) reason() (reason, shape string) {
	var e struct {
		Error *struct {
			Code    json.RawMessage `json:"code"`
			Message *string         `json:"message"`
			Errors  []struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
				Domain  string `json:"domain"`
			} `json:"errors"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error == nil {
		return "-", "not JSON with an error object: " + a.bodyKind()
	}
	reason = "-"
	if len(e.Error.Errors) > 0 && e.Error.Errors[0].Reason != "" {
		reason = e.Error.Errors[0].Reason
	}
	switch {
	case string(e.Error.Code) != strconv.Itoa(a.status):
		shape = fmt.Sprintf("code %s for status %d", e.Error.Code, a.status)
	case e.Error.Message == nil:
		shape = "no message"
	case reason != "-":
		shape = errGCS
	case strings.HasPrefix(*e.Error.Message, "{"):
		shape = "code and message only (the message is JSON in a string)"
	default:
		shape = "code and message only"
	}
	return reason, shape
}

// errorObs adds an error answer's observations to obs.
func (a answer) errorObs(obs observations) observations {
	if obs == nil {
		obs = observations{}
	}
	obs["status"], obs["date"] = a.statusText(), a.dateCheck()
	obs["reason"], obs["error"] = a.reason()
	return obs
}

// objectResource is the part of an object resource the cases look at.
type objectResource struct {
	Name           string            `json:"name"`
	Generation     string            `json:"generation"`
	Metageneration string            `json:"metageneration"`
	Updated        string            `json:"updated"`
	TimeCreated    string            `json:"timeCreated"`
	Metadata       map[string]string `json:"metadata"`
}

func (o *objectResource) updated() time.Time {
	u, _ := time.Parse(time.RFC3339Nano, o.Updated)
	return u
}

func (o *objectResource) timeCreated() time.Time {
	u, _ := time.Parse(time.RFC3339Nano, o.TimeCreated)
	return u
}

// object decodes a 200 answer's object resource; generation and
// metageneration must be JSON strings.
func (a answer) object(t *testing.T) *objectResource {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200 with an object: %.300s", a.status, a.body)
	}
	var o objectResource
	if err := json.Unmarshal(a.body, &o); err != nil {
		t.Fatalf("decoding the object: %v (generation and metageneration must be strings): %.300s", err, a.body)
	}
	return &o
}

// listPage is one page of a list.
type listPage struct {
	Kind          string           `json:"kind"`
	NextPageToken string           `json:"nextPageToken"`
	Prefixes      []string         `json:"prefixes"`
	Items         []objectResource `json:"items"`
}

func (a answer) listPage(t *testing.T) listPage {
	t.Helper()
	var p listPage
	if a.status != http.StatusOK {
		t.Fatalf("list: %d: %.300s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("decoding a list: %v: %.300s", err, a.body)
	}
	return p
}

// names lists the page's item names in the order given.
func (p listPage) names() string {
	if len(p.Items) == 0 {
		return "(none)"
	}
	var names []string
	for _, it := range p.Items {
		names = append(names, it.Name)
	}
	return strings.Join(names, ",")
}

// generationKind tells a generation in µs since the epoch (as GCS's) from
// one that counts from a time in ms (as the testbench's).
func generationKind(o *objectResource, before time.Time) string {
	g, err := strconv.ParseInt(o.Generation, 10, 64)
	switch {
	case err != nil:
		return fmt.Sprintf("not a decimal string: %q", o.Generation)
	case time.UnixMicro(g).Sub(before).Abs() < 10*time.Minute:
		return generation
	case g < time.Now().UnixMilli() && g > time.Now().Add(-30*24*time.Hour).UnixMilli():
		return "a count from the server's start in milliseconds"
	}
	return "other: " + o.Generation
}

func compareGen(before, after string) string {
	b, _ := strconv.ParseInt(before, 10, 64)
	a, _ := strconv.ParseInt(after, 10, 64)
	switch {
	case a > b:
		return "new, larger"
	case a == b:
		return "unchanged"
	}
	return "new, smaller"
}

func compareTime(before, after time.Time) string {
	switch {
	case before.IsZero() || after.IsZero():
		return "unreadable"
	case after.After(before):
		return "later"
	case after.Equal(before):
		return "unchanged"
	}
	return "earlier"
}

// metadataCheck compares custom metadata with what was sent.
func metadataCheck(got, sent map[string]string) string {
	var extra []string
	for k, v := range got {
		if sv, ok := sent[k]; !ok {
			extra = append(extra, k)
		} else if sv != v {
			return fmt.Sprintf("%s changed to %q", k, v)
		}
	}
	for k := range sent {
		if _, ok := got[k]; !ok {
			return "lost " + k
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return "as sent, plus " + strings.Join(extra, ", ")
	}
	return "as sent"
}
