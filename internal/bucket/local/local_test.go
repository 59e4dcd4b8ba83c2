package local

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/bucket/buckettest"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
)

func TestLocal(t *testing.T) {
	b, err := New("logs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	buckettest.Conformance(t, b)
	for _, k := range []string{"", "/abs", "a/../b", "a//b", "a\\b", "x.metadata.json"} {
		if err := b.Put(context.Background(), k, nil, "", nil); err == nil {
			t.Errorf("Put(%q) accepted", k)
		}
	}
	gone := &Bucket{name: "gone", dir: t.TempDir() + "/missing"}
	if err := gone.Check(context.Background()); !errors.Is(err, objects.ErrNoSuchBucket) {
		t.Errorf("Check(missing folder) = %v", err)
	}
}

func TestLocalRefusesKeysItCannotHold(t *testing.T) {
	l, err := New("b", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a/../b", "../x", "a//b", "/abs", "a\\b", strings.Repeat("k", 1025), "x" + metaSuffix} {
		err := l.Put(context.Background(), key, []byte("x"), "", nil)
		if !errors.Is(err, objects.ErrKeyRefused) || objects.ErrorCode(err) == "InternalError" {
			t.Errorf("Put(%.20q) = %v (code %s); want ErrKeyRefused with a code", key, err, objects.ErrorCode(err))
		}
	}
	if err := l.Put(context.Background(), "AWSLogs/1/CloudTrail/us-gov-west-1/k.json.gz", []byte("x"), "", nil); err != nil {
		t.Errorf("Put(valid key) = %v", err)
	}
}
