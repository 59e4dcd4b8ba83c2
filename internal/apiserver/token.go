package apiserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// tokenCodec makes NextTokens: opaque, tamper-proof, and bound to the query
// that produced them. A token is base64url(payload || mac) where payload is
// version(1) | unix seconds(8) | fingerprint(16) | eventID, or in a lookup
// of every account (a responder's) version(4) | unix seconds(8) |
// fingerprint(16) | len(eventID)(2) | eventID | account; fingerprint is a
// hash of the query's account, region, category, time bounds and
// attributes, and mac is HMAC-SHA256(key, payload) cut to 16 bytes.
type tokenCodec struct{ key []byte }

const (
	tokenVersion = 1
	// tokenVersionAccount carries the cursor's account too.
	tokenVersionAccount = 4 // 2 and 3 are the list operations' tokens
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
	return t.seal(p)
}

// seal returns the token of payload: base64url(payload || mac).
func (t tokenCodec) seal(payload []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(payload, t.mac(payload)...))
}

// open returns the payload of a token seal wrote with this key, after
// its version byte was checked to be one of versions.
func (t tokenCodec) open(token string, versions ...byte) ([]byte, error) {
	// The decoder skips CR and LF and, unless strict, ignores trailing
	// bits; a token must be exactly what seal wrote.
	if len(token) > maxTokenLen || strings.ContainsAny(token, "\r\n") {
		return nil, errBadToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) < 1+macLen || !slices.Contains(versions, b[0]) {
		return nil, errBadToken
	}
	payload, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(mac, t.mac(payload)) {
		return nil, errBadToken
	}
	return payload, nil
}

// decode checks token against fp and returns its cursor.
func (t tokenCodec) decode(fp []byte, token string) (*audit.Cursor, error) {
	payload, err := t.open(token, tokenVersion, tokenVersionAccount)
	if err != nil || len(payload) < 1+8+fpLen || !hmac.Equal(payload[9:9+fpLen], fp) {
		return nil, errBadToken
	}
	sec := int64(binary.BigEndian.Uint64(payload[1:9]))
	rest := payload[9+fpLen:]
	if payload[0] == tokenVersion {
		return &audit.Cursor{Time: time.Unix(sec, 0).UTC(), EventID: string(rest)}, nil
	}
	if len(rest) < 2 || int(binary.BigEndian.Uint16(rest)) > len(rest)-2 {
		return nil, errBadToken
	}
	n := int(binary.BigEndian.Uint16(rest))
	return &audit.Cursor{Time: time.Unix(sec, 0).UTC(), EventID: string(rest[2 : 2+n]), Account: string(rest[2+n:])}, nil
}

// offsetTokenVersion marks the NextTokens of the list operations that page
// by offset (ListEventDataStores, ListImports, GetQueryResults...).
const offsetTokenVersion = 2

// scope identifies the listing an offset token resumes: the operation, the
// caller's account and region, and the operation's filters (a store, a
// query ID, a status...). A token replayed for another listing is refused.
func scope(op string, p audit.Principal, filters ...string) []byte {
	h := sha256.New()
	for _, s := range append([]string{op, p.AccountID, p.Region}, filters...) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return h.Sum(nil)[:fpLen]
}

// encodeOffset returns the token resuming the listing of scope fp at item
// off: base64url(version | fp | offset | mac), 55 characters (the model's
// PaginationToken is 4 to 1000 characters).
func (t tokenCodec) encodeOffset(fp []byte, off int) string {
	p := make([]byte, 0, 1+fpLen+8+macLen)
	p = append(p, offsetTokenVersion)
	p = append(p, fp...)
	p = binary.BigEndian.AppendUint64(p, uint64(off))
	return t.seal(p)
}

// decodeOffset checks token against fp and returns its offset.
func (t tokenCodec) decodeOffset(fp []byte, token string) (int, error) {
	payload, err := t.open(token, offsetTokenVersion)
	if err != nil || len(payload) != 1+fpLen+8 || !hmac.Equal(payload[1:1+fpLen], fp) {
		return 0, errBadToken
	}
	off := binary.BigEndian.Uint64(payload[1+fpLen:])
	if off > 1<<31 {
		return 0, errBadToken
	}
	return int(off), nil
}

// keyTokenVersion marks the NextTokens of the list operations that page
// by key (ListTrails: the last ARN of a page).
const keyTokenVersion = 3

// encodeKey returns the token resuming the listing of scope fp after key:
// base64url(version | fp | key | mac).
func (t tokenCodec) encodeKey(fp []byte, key string) string {
	p := make([]byte, 0, 1+fpLen+len(key)+macLen)
	p = append(p, keyTokenVersion)
	p = append(p, fp...)
	p = append(p, key...)
	return t.seal(p)
}

// decodeKey checks token against fp and returns its key.
func (t tokenCodec) decodeKey(fp []byte, token string) (string, error) {
	payload, err := t.open(token, keyTokenVersion)
	if err != nil || len(payload) < 1+fpLen+1 || !hmac.Equal(payload[1:1+fpLen], fp) {
		return "", errBadToken
	}
	return string(payload[1+fpLen:]), nil
}
