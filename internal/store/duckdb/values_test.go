package duckdb

import (
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/cairn-audit/cairn/internal/audit"
)

// digestToken is token as a streaming Digest computes it: the definition
// the stored hash columns and bucket filters were written with.
func digestToken(k audit.AttributeKey, v string) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(string(k))
	d.Write([]byte{0})
	d.WriteString(v)
	return d.Sum64() & tokenMask
}

func TestTokenMatchesDigest(t *testing.T) {
	for _, n := range []int{0, 1, 7, 31, 32, 33, 150, 175, 176, 177, 191, 192, 500, 5000} {
		v := strings.Repeat("é9", n)[:n]
		for _, k := range []audit.AttributeKey{audit.AttrEventID, audit.AttrResourceName, audit.AttrAccessKeyID} {
			if got, want := token(k, v), digestToken(k, v); got != want {
				t.Fatalf("token(%s, %d bytes) = %x, want %x", k, n, got, want)
			}
		}
	}
}

// valuesOf works each token out once; it must give what valueHashes and
// recordTokens give, in their orders.
func TestValuesOfMatchesHashesAndTokens(t *testing.T) {
	long := strings.Repeat("arn:aws:s3:::bucket/", 20)
	recs := []audit.Record{
		{},
		{EventID: "e1", EventName: "GetObject", EventSource: "s3.amazonaws.com"},
		{EventID: "e2", Username: "alice", AccessKeyID: "AKIA1"},
		{EventID: "e3", Username: "bob", Resources: []audit.Resource{
			{Type: "AWS::S3::Object", Name: "k", ARN: "arn:aws:s3:::b/k"},
			{Type: "", Name: "n2", ARN: ""},
			{Type: "AWS::S3::Bucket", Name: "", ARN: long},
		}},
		{EventID: "e4", Resources: []audit.Resource{{}}},
		{EventID: "e5", AccessKeyID: "AKIA2", Resources: []audit.Resource{{ARN: "a"}, {Name: "b"}, {Type: "c"}}},
	}
	var toks []uint64
	for i := range recs {
		r := &recs[i]
		prefix := slices.Clone(toks)
		var v rowValues
		v, toks = valuesOf(r, toks)
		akid, user, res := valueHashes(r)
		if !v.ok || v.akid != akid || v.user != user {
			t.Fatalf("record %d: akid %v user %v, want %v %v", i, v.akid, v.user, akid, user)
		}
		gotRes, _ := v.res.([]any)
		wantRes, _ := res.([]any)
		if (v.res == nil) != (res == nil) || !slices.Equal(gotRes, wantRes) {
			t.Fatalf("record %d: res %v, want %v", i, v.res, res)
		}
		want := recordTokens(nil, r)
		if !slices.Equal(v.toks, want) {
			t.Fatalf("record %d: tokens %v, want %v", i, v.toks, want)
		}
		if !slices.Equal(toks[:len(prefix)], prefix) || !slices.Equal(toks[len(prefix):], want) {
			t.Fatalf("record %d: toks not appended", i)
		}
	}
}
