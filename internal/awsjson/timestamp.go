package awsjson

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Timestamp is an AWS JSON 1.1 timestamp. On the wire it is a JSON number
// of seconds since the Unix epoch, with a fraction when there are
// milliseconds (AWS answers 1441139757.497; botocore sends integers).
// Decoding keeps millisecond precision (finer digits are rounded) and also
// accepts, leniently, an ISO-8601 string ("2024-01-02T03:04:05Z", with or
// without fraction, offset or time, or the basic form
// "20240102T030405Z"); a string without an offset is UTC. Values outside
// years 0001 to 9999 are refused. The zero Timestamp is the zero time.
type Timestamp struct{ t time.Time }

// NewTimestamp returns t as a Timestamp.
func NewTimestamp(t time.Time) Timestamp { return Timestamp{t} }

// Time returns the timestamp as a time.Time in UTC.
func (ts Timestamp) Time() time.Time { return ts.t.UTC() }

// IsZero reports whether ts is the zero time.
func (ts Timestamp) IsZero() bool { return ts.t.IsZero() }

// The range of years 0001-9999 in epoch seconds.
const (
	minEpoch = -62135596800
	maxEpoch = 253402300799
)

var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
	"20060102T150405Z0700",
	"20060102T150405Z",
	"20060102",
}

// UnmarshalJSON accepts a JSON number of epoch seconds or an ISO-8601
// string. Its errors are *Error values (SerializationException).
func (ts *Timestamp) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return serialization("Invalid timestamp: expected epoch seconds or an ISO-8601 string")
		}
		t, ok := parseISO(s)
		if !ok {
			return serialization("Invalid timestamp " + strconv.Quote(audit.Clip(s, 64)) + ": expected epoch seconds or an ISO-8601 string")
		}
		ts.t = t
		return nil
	}
	if len(b) == 0 || !(b[0] == '-' || b[0] >= '0' && b[0] <= '9') {
		var v any
		if json.Unmarshal(b, &v) == nil {
			return serialization(notExpected(v, "Date"))
		}
		return serialization("Invalid timestamp: expected epoch seconds or an ISO-8601 string")
	}
	if !json.Valid(b) {
		return serialization("Invalid timestamp: expected epoch seconds or an ISO-8601 string")
	}
	t, ok := parseEpoch(string(b))
	if !ok {
		return serialization("Invalid timestamp: epoch seconds out of range (years 0001 to 9999)")
	}
	ts.t = t
	return nil
}

// parseEpoch parses a JSON number of seconds exactly (no float rounding),
// rounding to the millisecond.
func parseEpoch(s string) (time.Time, bool) {
	if len(s) > 64 {
		return time.Time{}, false
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		// Bound the exponent: big.Rat would expand 1e999999999.
		if e, err := strconv.Atoi(s[i+1:]); err != nil || e < -40 || e > 40 {
			return time.Time{}, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, false
	}
	ms := new(big.Rat).Mul(r, big.NewRat(1000, 1))
	// Round half away from zero to whole milliseconds.
	num, den := ms.Num(), ms.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return time.Time{}, false
	}
	msv := q.Int64()
	if msv < minEpoch*1000 || msv > maxEpoch*1000+999 {
		return time.Time{}, false
	}
	return time.UnixMilli(msv).UTC(), true
}

func parseISO(s string) (time.Time, bool) {
	if len(s) > 64 {
		return time.Time{}, false
	}
	s = strings.TrimSpace(s)
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			// The same range as epoch seconds: year 0000, or 9999 with a
			// negative offset, would not round-trip.
			if u := t.Unix(); u < minEpoch || u > maxEpoch {
				return time.Time{}, false
			}
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// MarshalJSON writes epoch seconds, with up to three decimals when the
// time has milliseconds (finer precision is truncated): 1441139757.497,
// 1700000000.5, 1700000000.
func (ts Timestamp) MarshalJSON() ([]byte, error) {
	return ts.AppendJSON(nil), nil
}

// AppendJSON appends what MarshalJSON writes to b.
func (ts Timestamp) AppendJSON(b []byte) []byte {
	ms := ts.t.UnixMilli()
	if ms < 0 {
		b = append(b, '-')
		ms = -ms
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		b = append(b, '.')
		b = append(b, strings.TrimRight(strconv.FormatInt(1000+frac, 10)[1:], "0")...)
	}
	return b
}
