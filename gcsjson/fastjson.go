package gcsjson

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// A fast path for decoding object resources and lists, which every request
// parses. encoding/json decodes them by reflection, and that was the
// largest cost of a request after the network. The fast path takes the
// shape GCS sends (strings without escapes, numbers as strings, one
// metadata object) and gives up on anything else, such as an escape, a
// duplicate key or a key that differs only in case, so that the caller
// decodes with encoding/json instead: both always give the same result.
// FuzzFastJSON checks that.

// objectKeys are the keys of objectJSON, as encoding/json matches them.
var objectKeys = [...]string{"bucket", "name", "generation", "metageneration", "size", "contentType", "cacheControl", "timeCreated", "updated", "metadata"}

// maxDepth bounds the nesting of skipped values.
const maxDepth = 64

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and reports whether the next byte is c, consuming
// it if so.
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek returns the next byte after white space, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string without escapes or control characters, in valid
// UTF-8.
func (s *scanner) str() (string, bool) {
	if !s.next('"') {
		return "", false
	}
	start := s.i
	ascii := true
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[start:j]
			if !ascii && !utf8.Valid(v) {
				return "", false
			}
			s.i = j + 1
			return string(v), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// null consumes the literal null if it comes next.
func (s *scanner) null() bool {
	s.ws()
	if strings.HasPrefix(string(s.b[s.i:min(s.i+4, len(s.b))]), "null") {
		s.i += 4
		return true
	}
	return false
}

// int64Value reads what int64String.UnmarshalJSON accepts: a string of a
// decimal integer, a bare integer, or null (leaving v alone).
func (s *scanner) int64Value(v *int64String) bool {
	if s.null() {
		return true
	}
	var digits string
	if s.peek() == '"' {
		d, ok := s.str()
		if !ok {
			return false
		}
		digits = d
	} else {
		start := s.i
		if !s.number() {
			return false
		}
		digits = string(s.b[start:s.i])
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return false
	}
	*v = int64String(n)
	return true
}

// strValue reads a string or null (leaving v alone).
func (s *scanner) strValue(v *string) bool {
	if s.null() {
		return true
	}
	x, ok := s.str()
	*v = x
	return ok
}

// number reads a JSON number.
func (s *scanner) number() bool {
	s.ws()
	b, i := s.b, s.i
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	s.i = i
	return true
}

// skip reads and discards any JSON value.
func (s *scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		s.i++
		if s.next('}') {
			return true
		}
		for {
			if _, ok := s.str(); !ok || !s.next(':') || !s.skip(depth+1) {
				return false
			}
			if s.next('}') {
				return true
			}
			if !s.next(',') {
				return false
			}
		}
	case c == '[':
		s.i++
		if s.next(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.next(']') {
				return true
			}
			if !s.next(',') {
				return false
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if strings.HasPrefix(string(s.b[s.i:min(s.i+len(lit), len(s.b))]), lit) {
			s.i += len(lit)
			return true
		}
	}
	return false
}

// object reads an object resource.
func (s *scanner) object(w *objectJSON) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	var seen [len(objectKeys)]bool
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		k := -1
		for i, name := range objectKeys {
			if key == name {
				k = i
				break
			}
			if strings.EqualFold(key, name) {
				return false // encoding/json would match it: leave it to it
			}
		}
		if k >= 0 {
			if seen[k] {
				return false
			}
			seen[k] = true
		}
		switch k {
		case 0:
			ok = s.strValue(&w.Bucket)
		case 1:
			ok = s.strValue(&w.Name)
		case 2:
			ok = s.int64Value(&w.Generation)
		case 3:
			ok = s.int64Value(&w.Metageneration)
		case 4:
			ok = s.int64Value(&w.Size)
		case 5:
			ok = s.strValue(&w.ContentType)
		case 6:
			ok = s.strValue(&w.CacheControl)
		case 7:
			ok = s.strValue(&w.TimeCreated)
		case 8:
			ok = s.strValue(&w.Updated)
		case 9:
			ok = s.metadata(&w.Metadata)
		default:
			ok = s.skip(0)
		}
		if !ok {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// metadata reads an object of strings, or null.
func (s *scanner) metadata(md *map[string]string) bool {
	if s.null() {
		return true
	}
	if !s.next('{') {
		return false
	}
	m := map[string]string{}
	*md = m
	if s.next('}') {
		return true
	}
	for {
		k, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		if _, dup := m[k]; dup {
			return false
		}
		v, ok := s.str()
		if !ok {
			return false
		}
		m[k] = v
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// fastObject decodes an object resource, or reports false if the fast path
// does not apply.
func fastObject(data []byte) (objectJSON, bool) {
	var w objectJSON
	s := scanner{b: data}
	return w, s.object(&w) && s.end()
}

// fastList decodes an objects list, or reports false if the fast path does
// not apply.
func fastList(data []byte) (listJSON, bool) {
	var l listJSON
	s := scanner{b: data}
	if !s.next('{') {
		return l, false
	}
	if s.next('}') {
		return l, s.end()
	}
	var items, token bool
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return l, false
		}
		switch {
		case key == "items" && !items:
			items = true
			if s.null() {
				break
			}
			if !s.next('[') {
				return l, false
			}
			if s.next(']') {
				l.Items = []objectJSON{}
				break
			}
			for {
				var w objectJSON
				if !s.object(&w) {
					return l, false
				}
				l.Items = append(l.Items, w)
				if s.next(']') {
					break
				}
				if !s.next(',') {
					return l, false
				}
			}
		case key == "nextPageToken" && !token:
			token = true
			if !s.strValue(&l.NextPageToken) {
				return l, false
			}
		case strings.EqualFold(key, "items") || strings.EqualFold(key, "nextPageToken"):
			return l, false
		default:
			if !s.skip(0) {
				return l, false
			}
		}
		if s.next('}') {
			return l, s.end()
		}
		if !s.next(',') {
			return l, false
		}
	}
}
