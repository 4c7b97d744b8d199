package main

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// tracker is a middleware in front of the emulator that knows the lock's
// true state. It serialises the requests for objects, so that each request
// sees one state before it and leaves one after it, and it classifies every
// write by what that state was and by the writer's own history:
//
//   - arrival attempt: the first write of an Acquire call, which by the
//     protocol is a create with ifGenerationMatch=0 sent before any read;
//     it fails with 412 if the lock is held. A worker's first write after
//     its own release (or its first write ever) is one.
//   - race after a 404: a create sent after the writer's own latest read
//     found no object. Several waiters can see the same 404; the first
//     create wins and the rest lose with 412 ("create races lost").
//   - write after a live read: a write sent after the writer's own latest
//     read showed a live lease held by someone else. The protocol never
//     does this; it must be 0.
//   - expired takeover: a write after a read showed an expired lease. With
//     a 60 s TTL and 200 ms holds there should be none.
//   - holder write: the holder's refresh or release.
//
// "Writes while live" are the writes, other than the holder's own, that
// reach the server while a live lease is held: arrival attempts that find
// the lock held, create races lost, and writes after a live read.
type tracker struct {
	next http.Handler
	ttl  time.Duration

	mu      sync.Mutex
	live    bool // the object exists...
	holder  string
	written time.Time // ...and was last written then
	clients map[string]*clientState
	events  []event
}

type readResult int

const (
	readNone readResult = iota
	readGone
	readLive
	readExpired
	readOwn
)

type clientState struct {
	arriving bool       // the next write starts an Acquire
	lastRead readResult // what the client's latest read showed
}

type class int

const (
	read class = iota
	arrival
	raceAfterGone
	afterLiveRead
	takeover
	holderWrite
	foreignWrite
)

type event struct {
	at       time.Time
	class    class
	status   int
	liveElse bool // a live lease held by someone else when it arrived
	acquired bool // a write that made its writer the holder
	released bool // a delete that freed the lock
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (t *tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.URL.Path, "/o") {
		t.next.ServeHTTP(w, r)
		return
	}
	id := r.Header.Get(header)
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.clients[id]
	if cs == nil {
		cs = &clientState{arriving: true}
		t.clients[id] = cs
	}
	now := time.Now()
	isLive := t.live && now.Before(t.written.Add(t.ttl))
	liveElse := isLive && t.holder != id
	sw := &statusWriter{ResponseWriter: w}
	t.next.ServeHTTP(sw, r)
	ev := event{at: time.Now(), status: sw.status, liveElse: liveElse}
	if ev.status == 0 {
		ev.status = http.StatusOK
	}
	ok := ev.status/100 == 2
	switch r.Method {
	case http.MethodGet:
		ev.class = read
		switch {
		case ev.status == http.StatusNotFound:
			cs.lastRead = readGone
		case ok && t.holder == id:
			cs.lastRead = readOwn
		case ok && isLive:
			cs.lastRead = readLive
		case ok:
			cs.lastRead = readExpired
		}
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		switch {
		case cs.arriving:
			ev.class = arrival
			cs.arriving = false
		case t.live && t.holder == id:
			ev.class = holderWrite
		case cs.lastRead == readGone:
			ev.class = raceAfterGone
		case cs.lastRead == readLive:
			ev.class = afterLiveRead
		case cs.lastRead == readExpired:
			ev.class = takeover
		default:
			ev.class = foreignWrite
		}
		if ok {
			ev.acquired = !(t.live && t.holder == id)
			t.live, t.holder, t.written = true, id, ev.at
		}
	case http.MethodDelete:
		ev.class = holderWrite
		if t.holder != id {
			ev.class = foreignWrite
		}
		if ok {
			ev.released = true
			t.live, t.holder = false, ""
			cs.arriving = true
		}
	}
	t.events = append(t.events, ev)
}

type stats struct {
	window    time.Duration
	latencies []time.Duration
	reads     int
	writes    int

	arrivalsLive    int // arrival attempts that found a live lease
	racesLost       int
	afterLiveRead   int
	takeovers       int
	foreign         int
	writesWhileLive int
}

// stats summarises the events from the first release to the last
// acquisition that followed a release: the steady state, without the
// starting stampede.
func (t *tracker) stats() *stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &stats{}
	start, end := -1, -1
	var released time.Time
	for i, ev := range t.events {
		switch {
		case ev.released:
			if start < 0 {
				start = i
			}
			released = ev.at
		case ev.acquired && !released.IsZero():
			s.latencies = append(s.latencies, ev.at.Sub(released))
			released = time.Time{}
			end = i
		}
	}
	if start < 0 || end < 0 {
		return s
	}
	s.window = t.events[end].at.Sub(t.events[start].at)
	for _, ev := range t.events[start : end+1] {
		if ev.class == read {
			s.reads++
			continue
		}
		s.writes++
		if ev.liveElse {
			s.writesWhileLive++
		}
		switch ev.class {
		case arrival:
			if ev.liveElse {
				s.arrivalsLive++
			}
		case raceAfterGone:
			if ev.liveElse {
				s.racesLost++
			}
		case afterLiveRead:
			s.afterLiveRead++
		case takeover:
			s.takeovers++
		case foreignWrite:
			s.foreign++
		}
	}
	return s
}
