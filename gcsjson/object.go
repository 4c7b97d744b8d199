package gcsjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Object is the metadata of one object version, as the JSON API returns it,
// plus two facts about the response that carried it.
type Object struct {
	Bucket         string
	Name           string
	Generation     int64
	Metageneration int64
	Size           int64
	ContentType    string
	CacheControl   string
	TimeCreated    time.Time
	Updated        time.Time
	Metadata       map[string]string

	// ServerTime is the response's Date header: the server's clock, to the
	// second. It is zero when the header is missing or malformed.
	ServerTime time.Time
	// SentAt is the local time, with its monotonic reading, at which the
	// request was sent. For a write that needed retries it is the send time
	// of the first attempt that may have landed: a retry's success may be
	// GCS replaying that attempt, so the write may be that old.
	SentAt time.Time
	// Attempts is how many requests the call that returned this object
	// sent, retries included.
	Attempts int
}

// objectJSON is the wire form. The API sends 64-bit numbers as strings.
type objectJSON struct {
	Bucket         string            `json:"bucket"`
	Name           string            `json:"name"`
	Generation     int64String       `json:"generation"`
	Metageneration int64String       `json:"metageneration"`
	Size           int64String       `json:"size"`
	ContentType    string            `json:"contentType"`
	CacheControl   string            `json:"cacheControl"`
	TimeCreated    string            `json:"timeCreated"`
	Updated        string            `json:"updated"`
	Metadata       map[string]string `json:"metadata"`
}

// ParseObject decodes an object resource from a JSON API response body.
// It never panics, whatever the input.
func ParseObject(data []byte) (*Object, error) {
	w, ok := fastObject(data)
	if !ok {
		w = objectJSON{}
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, fmt.Errorf("gcsjson: malformed object resource: %w", err)
		}
	}
	return w.object()
}

// listJSON is the wire form of an objects list.
type listJSON struct {
	Items         []objectJSON `json:"items"`
	NextPageToken string       `json:"nextPageToken"`
}

// parseList decodes an objects-list response body.
func parseList(data []byte) ([]*Object, string, error) {
	w, ok := fastList(data)
	if !ok {
		w = listJSON{}
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, "", fmt.Errorf("gcsjson: malformed objects list: %w", err)
		}
	}
	objs := make([]*Object, 0, len(w.Items))
	for i := range w.Items {
		o, err := w.Items[i].object()
		if err != nil {
			return nil, "", err
		}
		objs = append(objs, o)
	}
	return objs, w.NextPageToken, nil
}

func (w *objectJSON) object() (*Object, error) {
	o := &Object{
		Bucket:         w.Bucket,
		Name:           w.Name,
		Generation:     int64(w.Generation),
		Metageneration: int64(w.Metageneration),
		Size:           int64(w.Size),
		ContentType:    w.ContentType,
		CacheControl:   w.CacheControl,
		Metadata:       w.Metadata,
	}
	var err error
	if o.TimeCreated, err = parseTime("timeCreated", w.TimeCreated); err != nil {
		return nil, err
	}
	if o.Updated, err = parseTime("updated", w.Updated); err != nil {
		return nil, err
	}
	if o.Generation <= 0 {
		return nil, fmt.Errorf("gcsjson: malformed object resource: generation %d is not positive", o.Generation)
	}
	return o, nil
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("gcsjson: malformed object resource: %s %q is not RFC 3339", field, s)
	}
	return t, nil
}

// int64String decodes an int64 sent as a JSON string, as the API does, and
// also accepts a bare number.
type int64String int64

// UnmarshalJSON decodes "123" or 123.
func (n *int64String) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		s = string(b[1 : len(b)-1])
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a 64-bit integer: %s", b)
	}
	*n = int64String(v)
	return nil
}
