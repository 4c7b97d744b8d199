package dimutex

import (
	"strconv"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// The lock object's custom metadata keys.
const (
	keyLease    = "dimutex-lease"    // random 128-bit id of the lease, hex
	keyTTL      = "dimutex-ttl"      // the holder's TTL in milliseconds
	keyToken    = "dimutex-token"    // the acquiring generation; absent on the acquiring write
	keyOwner    = "dimutex-owner"    // human-readable holder
	keyAcquired = "dimutex-acquired" // server time of the acquiring write, RFC 3339; absent on it
)

// record is what a lease writes into the lock object.
type record struct {
	lease    string
	ttl      time.Duration
	token    int64
	owner    string
	acquired time.Time
}

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
	// The body is for people who read the object; the metadata is the lock.
	return gcsjson.Write{
		Metadata:     md,
		ContentType:  "text/plain; charset=utf-8",
		CacheControl: "no-store",
		Data:         []byte("dimutex lock held by " + r.owner + "\n"),
	}
}

// readRecord decodes an object's metadata. Missing or malformed fields stay
// zero: the object may not have been written by dimutex.
func readRecord(md map[string]string) record {
	r := record{lease: md[keyLease], owner: md[keyOwner]}
	// Absent keys are skipped rather than parsed: a parse error allocates.
	if v := md[keyTTL]; v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 && ms <= int64(maxTTL/time.Millisecond) {
			r.ttl = time.Duration(ms) * time.Millisecond
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

// maxTTL bounds a TTL read from an object, so that arithmetic cannot overflow.
const maxTTL = 100 * 365 * 24 * time.Hour
