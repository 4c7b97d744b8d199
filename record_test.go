package dimutex

import (
	"testing"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// Whatever a lock object's metadata holds, reading it never panics and
// yields a TTL that timing arithmetic can use; what dimutex writes reads back.
func FuzzReadRecord(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef", "60000", "1712345678901234", "host/1", "2026-01-02T03:04:05.123456Z")
	f.Add("", "", "", "", "")
	f.Add("x", "-5", "0", "\x00", "yesterday")
	f.Add("x", "9223372036854775807", "-1", "o", "2026-13-40T99:99:99Z")
	f.Add("x", "1e3", "0x10", "o", "")
	f.Fuzz(func(t *testing.T, lease, ttl, token, owner, acquired string) {
		r := readRecord(map[string]string{keyLease: lease, keyTTL: ttl, keyToken: token, keyOwner: owner, keyAcquired: acquired, keyValue: owner, keySlots: token})
		if r.ttl <= 0 || r.ttl > MaxTTL || r.token < 0 || r.slots < 0 {
			t.Fatalf("read %+v", r)
		}
		if r.ttlCapped && r.ttl != MaxTTL {
			t.Fatalf("ttl %q read as %v, capped=%v", ttl, r.ttl, r.ttlCapped)
		}
		if r.lease != lease || r.owner != owner || r.value != owner {
			t.Fatalf("lease, owner or value changed: %+v", r)
		}
		back := readRecord(r.write().Metadata)
		if back.lease != r.lease || back.ttl != r.ttl.Truncate(time.Millisecond) || back.token != r.token || back.owner != r.owner ||
			!back.acquired.Equal(r.acquired) || back.value != r.value || back.slots != r.slots {
			t.Fatalf("round trip: wrote %+v, read %+v", r, back)
		}
	})
}

func TestExpiresIn(t *testing.T) {
	updated := time.Date(2026, 11, 25, 12, 0, 0, 500_000_000, time.UTC)
	local := time.Now()
	tests := []struct {
		name       string
		serverTime time.Time
		seenAt     time.Time
		now        time.Time
		want       time.Duration
	}{
		{"fresh, by server time", updated.Add(time.Second).Truncate(time.Second), local, local, 10*time.Second + time.Second - 500*time.Millisecond},
		{"at the TTL, not yet expired by the margin", updated.Add(10 * time.Second), local, local, time.Second},
		{"exactly TTL + margin: not expired", updated.Add(11 * time.Second), local, local, 0},
		{"past TTL + margin: expired", updated.Add(12 * time.Second), local, local, -time.Second},
		{"the local clock bounds the wait: TTL + margin after first sight", updated.Add(time.Second), local, local.Add(12 * time.Second), -time.Second},
		{"no Date: local monotonic clock from first sight", time.Time{}, local, local.Add(4 * time.Second), 7 * time.Second},
		{"no Date: expired after TTL + margin unchanged", time.Time{}, local, local.Add(12 * time.Second), -time.Second},
		{"Date gone backwards a day: the local clock bounds the wait", updated.Add(-24 * time.Hour), local, local.Add(5 * time.Second), 6 * time.Second},
		{"updated later than Date: the local clock bounds the wait", updated.Add(-time.Minute), local, local, 11 * time.Second},
	}
	for _, tc := range tests {
		obj := &gcsjson.Object{Generation: 1, Updated: updated, ServerTime: tc.serverTime}
		if got := expiresIn(obj, 10*time.Second, time.Second, tc.seenAt, tc.now); got != tc.want {
			t.Errorf("%s: expiresIn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A waiter resets its poll backoff when the holder changes, and never polls
// sooner than the minimum.
func TestWaiterSchedule(t *testing.T) {
	w := waiter{min: 100 * time.Millisecond, max: 5 * time.Second}
	var last time.Duration
	for range 10 {
		last = w.pause(time.Hour)
	}
	if last < 2500*time.Millisecond || last > 5*time.Second {
		t.Errorf("after 10 polls the pause is %v, want [max/2, max]", last)
	}
	// Date counts whole seconds: within a second of expiry, read every min.
	for _, left := range []time.Duration{time.Millisecond, 900 * time.Millisecond, time.Second} {
		if d := w.pause(left); d != w.min {
			t.Errorf("pause with %v left = %v, want the minimum %v", left, d, w.min)
		}
	}
	if d := w.pause(1800 * time.Millisecond); d != 800*time.Millisecond {
		t.Errorf("pause with 1.8s left = %v, want 800ms: the earliest moment it may expire", d)
	}
	now := time.Now()
	obj := &gcsjson.Object{Generation: 2, Updated: now, ServerTime: now}
	w.saw("new-holder")
	w.expiresIn(0, obj, time.Second, time.Second, now)
	if d := w.pause(time.Hour); d > w.min {
		t.Errorf("first pause after a new holder = %v, want at most %v", d, w.min)
	}
}
