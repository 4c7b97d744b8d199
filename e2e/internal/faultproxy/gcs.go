package faultproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// gcsError returns an answer in the GCS JSON API's error format:
//
//	{"error":{"code":503,"message":"...","errors":[{"domain":"global","reason":"backendError","message":"..."}]}}
func gcsError(code int, domain, reason, message string) *response {
	type item struct {
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	var v struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Errors  []item `json:"errors"`
		} `json:"error"`
	}
	v.Error.Code = code
	v.Error.Message = message
	v.Error.Errors = []item{{Domain: domain, Reason: reason, Message: message}}
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // cannot happen: the value is all strings and ints
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=UTF-8")
	return &response{status: code, header: h, body: body}
}

// faultResponse returns the answer for one of the status faults.
func faultResponse(f Fault) *response {
	switch f {
	case Status500:
		return gcsError(http.StatusInternalServerError, "global", "backendError", "Backend Error")
	case Status503:
		return gcsError(http.StatusServiceUnavailable, "global", "backendError", "Backend Error")
	case Status429:
		return gcsError(http.StatusTooManyRequests, "usageLimits", "rateLimitExceeded",
			"The object exceeded the rate limit for object mutation operations (create, update, and delete). Please reduce your request rate.")
	case Status408:
		return gcsError(http.StatusRequestTimeout, "global", "requestTimeout", "Request Timeout")
	case Status400:
		return gcsError(http.StatusBadRequest, "global", "invalid", "Invalid Argument")
	case Status401:
		return gcsError(http.StatusUnauthorized, "global", "required", "Anonymous caller does not have storage.objects.create access.")
	}
	panic("faultproxy: not a status fault: " + f.String())
}

// writeFault answers req with the status fault f and returns its status.
func writeFault(w http.ResponseWriter, req *http.Request, f Fault) int {
	up := faultResponse(f)
	relay(w, req, up)
	return up.status
}

// writeProxyError answers 502 in the GCS error format, for a failure of
// the proxy itself (such as the target being unreachable), and returns 502.
func writeProxyError(w http.ResponseWriter, req *http.Request, message string) int {
	up := gcsError(http.StatusBadGateway, "global", "badGateway", message)
	relay(w, req, up)
	return up.status
}

// checkDelete enforces a DELETE's generation preconditions (see
// WithDeletePreconditions). It returns the answer to send instead of
// forwarding, or nil if the DELETE may go ahead.
func (p *Proxy) checkDelete(req *http.Request) (*response, error) {
	q := req.URL.Query()
	_, hasMatch := q["ifGenerationMatch"]
	_, hasNotMatch := q["ifGenerationNotMatch"]
	if !hasMatch && !hasNotMatch {
		return nil, nil
	}
	var want, notWant int64
	var err error
	if hasMatch {
		if want, err = strconv.ParseInt(q.Get("ifGenerationMatch"), 10, 64); err != nil {
			return gcsError(http.StatusBadRequest, "global", "invalid", "Invalid argument."), nil
		}
	}
	if hasNotMatch {
		if notWant, err = strconv.ParseInt(q.Get("ifGenerationNotMatch"), 10, 64); err != nil {
			return gcsError(http.StatusBadRequest, "global", "invalid", "Invalid argument."), nil
		}
	}

	var getQuery string
	if g := q.Get("generation"); g != "" {
		getQuery = "generation=" + url.QueryEscape(g)
	}
	out, err := http.NewRequestWithContext(p.ctx, http.MethodGet, p.targetURL(req.URL, getQuery), nil)
	if err != nil {
		return nil, err
	}
	up, err := p.roundTrip(out)
	if err != nil {
		return nil, err
	}
	switch up.status {
	case http.StatusOK:
	case http.StatusNotFound:
		return gcsError(http.StatusNotFound, "global", "notFound", "No such object: "+objectName(req.URL)), nil
	default:
		return nil, fmt.Errorf("faultproxy: reading metadata for the DELETE precondition: status %d: %s", up.status, up.body)
	}
	var meta struct {
		Generation string `json:"generation"` // a JSON string in the GCS API
	}
	if err := json.Unmarshal(up.body, &meta); err != nil {
		return nil, fmt.Errorf("faultproxy: reading metadata for the DELETE precondition: %v", err)
	}
	gen, err := strconv.ParseInt(meta.Generation, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: reading metadata for the DELETE precondition: generation %q: %v", meta.Generation, err)
	}
	if (hasMatch && gen != want) || (hasNotMatch && gen == notWant) {
		return gcsError(http.StatusPreconditionFailed, "global", "conditionNotMet",
			"At least one of the pre-conditions you specified did not hold."), nil
	}
	return nil, nil
}

// objectName returns "bucket/object" for a path /storage/v1/b/B/o/N, for
// error messages, or the path itself.
func objectName(u *url.URL) string {
	_, rest, ok := strings.Cut(u.Path, "/b/")
	if !ok {
		return u.Path
	}
	bucket, object, ok := strings.Cut(rest, "/o/")
	if !ok {
		return u.Path
	}
	return bucket + "/" + object
}
