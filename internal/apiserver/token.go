package apiserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// tokenCodec makes NextTokens: opaque, tamper-proof, and bound to the query
// that produced them. A token is base64url(payload || mac) where payload is
// version(1) | unix seconds(8) | fingerprint(16) | eventID, or in a lookup
// of every account (a responder's) version(2) | unix seconds(8) |
// fingerprint(16) | len(eventID)(2) | eventID | account; fingerprint is a
// hash of the query's account, region, category, time bounds and
// attributes, and mac is HMAC-SHA256(key, payload) cut to 16 bytes.
type tokenCodec struct{ key []byte }

const (
	tokenVersion = 1
	// tokenVersionAccount carries the cursor's account too.
	tokenVersionAccount = 2
	fpLen               = 16
	macLen              = 16
	// maxTokenLen bounds what is decoded at all.
	maxTokenLen = 1024
)

var errBadToken = errors.New("bad token")

// fingerprint identifies the parameters a token must be replayed with.
// Limit and After are not part of it: paging may change the page size.
func fingerprint(q *audit.Query, start, end *time.Time) []byte {
	type attr struct{ K, V string }
	v := struct {
		A, R  string
		Any   bool `json:",omitempty"`
		AnyR  bool `json:",omitempty"`
		C     uint8
		S, E  *int64
		Attrs []attr
	}{A: q.Account, R: q.Region, Any: q.AnyAccount, AnyR: q.AnyRegion, C: uint8(q.Category)}
	if start != nil {
		u := start.UnixNano()
		v.S = &u
	}
	if end != nil {
		u := end.UnixNano()
		v.E = &u
	}
	for _, a := range q.Attributes {
		v.Attrs = append(v.Attrs, attr{string(a.Key), a.Value})
	}
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return h[:fpLen]
}

func (t tokenCodec) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

// encode returns the token for resuming after c.
func (t tokenCodec) encode(fp []byte, c *audit.Cursor) string {
	p := make([]byte, 0, 1+8+fpLen+2+len(c.EventID)+len(c.Account)+macLen)
	v := byte(tokenVersion)
	if c.Account != "" {
		v = tokenVersionAccount
	}
	p = append(p, v)
	p = binary.BigEndian.AppendUint64(p, uint64(c.Time.Unix()))
	p = append(p, fp...)
	if v == tokenVersionAccount {
		// eventIDs are at most a few hundred bytes (request bodies are 1
		// MiB, records' eventIDs are checked by Extract).
		p = binary.BigEndian.AppendUint16(p, uint16(len(c.EventID)))
	}
	p = append(p, c.EventID...)
	if v == tokenVersionAccount {
		p = append(p, c.Account...)
	}
	p = append(p, t.mac(p)...)
	return base64.RawURLEncoding.EncodeToString(p)
}

// decode checks token against fp and returns its cursor.
func (t tokenCodec) decode(fp []byte, token string) (*audit.Cursor, error) {
	// The decoder skips CR and LF and, unless strict, ignores trailing
	// bits; a token must be exactly what encode wrote.
	if len(token) > maxTokenLen || strings.ContainsAny(token, "\r\n") {
		return nil, errBadToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) < 1+8+fpLen+macLen || b[0] != tokenVersion && b[0] != tokenVersionAccount {
		return nil, errBadToken
	}
	payload, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(mac, t.mac(payload)) {
		return nil, errBadToken
	}
	if !hmac.Equal(payload[9:9+fpLen], fp) {
		return nil, errBadToken
	}
	sec := int64(binary.BigEndian.Uint64(payload[1:9]))
	rest := payload[9+fpLen:]
	if b[0] == tokenVersion {
		return &audit.Cursor{Time: time.Unix(sec, 0).UTC(), EventID: string(rest)}, nil
	}
	if len(rest) < 2 || int(binary.BigEndian.Uint16(rest)) > len(rest)-2 {
		return nil, errBadToken
	}
	n := int(binary.BigEndian.Uint16(rest))
	return &audit.Cursor{Time: time.Unix(sec, 0).UTC(), EventID: string(rest[2 : 2+n]), Account: string(rest[2+n:])}, nil
}
