package dimutex

import (
	"strconv"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// The lock object's custom metadata keys. An object is a dimutex lock if,
// and only if, it carries keyLease.
const (
	keyLease    = "dimutex-lease"    // random 128-bit id of the lease, hex
	keyTTL      = "dimutex-ttl"      // the holder's TTL in milliseconds
	keyToken    = "dimutex-token"    // the acquiring generation; absent on the acquiring write
	keyOwner    = "dimutex-owner"    // human-readable holder
	keyAcquired = "dimutex-acquired" // server time of the acquiring write, RFC 3339; absent on it
	keyValue    = "dimutex-value"    // the value the holder publishes; absent if none
	keySlots    = "dimutex-slots"    // the size of the semaphore a slot belongs to; absent for a Mutex
)

// record is what a lease writes into the lock object.
type record struct {
	lease    string
	ttl      time.Duration
	token    int64
	owner    string
	acquired time.Time
	value    string
	slots    int

	// ttlCapped reports, for a record read from an object, that its TTL
	// was missing, unreadable or above MaxTTL, so ttl is MaxTTL.
	ttlCapped bool
}

// isLock reports whether the object the record was read from is a dimutex
// lock.
func (r record) isLock() bool { return r.lease != "" }

// write returns the upload that stores r.
func (r record) write() gcsjson.Write {
	md := map[string]string{
		keyLease: r.lease,
		keyTTL:   strconv.FormatInt(r.ttl.Milliseconds(), 10),
		keyOwner: r.owner,
	}
	if r.token != 0 {
		md[keyToken] = strconv.FormatInt(r.token, 10)
	}
	if !r.acquired.IsZero() {
		md[keyAcquired] = r.acquired.UTC().Format(time.RFC3339Nano)
	}
	if r.value != "" {
		md[keyValue] = r.value
	}
	if r.slots != 0 {
		md[keySlots] = strconv.Itoa(r.slots)
	}
	// The body is for people who read the object; the metadata is the lock.
	return gcsjson.Write{
		Metadata:     md,
		ContentType:  "text/plain; charset=utf-8",
		CacheControl: "no-store",
		Data:         []byte("dimutex lock held by " + r.owner + "\n"),
	}
}

// readRecord decodes an object's metadata. Missing or malformed fields stay
// zero, except the TTL: a lock whose TTL is missing, malformed or above
// MaxTTL is judged by MaxTTL, never by the reader's own TTL.
func readRecord(md map[string]string) record {
	r := record{lease: md[keyLease], owner: md[keyOwner], value: md[keyValue], ttl: MaxTTL, ttlCapped: true}
	// Absent keys are skipped rather than parsed: a parse error allocates.
	if v := md[keyTTL]; v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 && ms <= MaxTTL.Milliseconds() {
			r.ttl, r.ttlCapped = time.Duration(ms)*time.Millisecond, false
		}
	}
	if v := md[keyToken]; v != "" {
		if t, err := strconv.ParseInt(v, 10, 64); err == nil && t > 0 {
			r.token = t
		}
	}
	if v := md[keyAcquired]; v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			r.acquired = t
		}
	}
	if v := md[keySlots]; v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			r.slots = n
		}
	}
	return r
}

// tokenOf returns the fencing token of the lease that wrote obj: its
// acquiring generation, which is obj's own on the acquiring write.
func (r record) tokenOf(obj *gcsjson.Object) int64 {
	if r.token != 0 {
		return r.token
	}
	return obj.Generation
}

// acquiredAt returns when the lease that wrote obj acquired the lock, by
// the server's clock.
func (r record) acquiredAt(obj *gcsjson.Object) time.Time {
	if !r.acquired.IsZero() {
		return r.acquired
	}
	return obj.TimeCreated
}

// notALock returns the error for obj, an object at lk's name that is not a
// lock.
func (lk *lock) notALock(obj *gcsjson.Object) error {
	return &NotALockError{Lock: lk.ref, Generation: obj.Generation, Size: obj.Size, ContentType: obj.ContentType}
}
