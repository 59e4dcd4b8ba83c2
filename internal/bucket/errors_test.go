package bucket

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestLocalRefusesKeysItCannotHold(t *testing.T) {
	l, err := NewLocal("b", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a/../b", "../x", "a//b", "/abs", "a\\b", strings.Repeat("k", 1025), "x" + metaSuffix} {
		err := l.Put(context.Background(), key, []byte("x"), "", nil)
		if !errors.Is(err, ErrKeyRefused) || ErrorCode(err) == "InternalError" {
			t.Errorf("Put(%.20q) = %v (code %s); want ErrKeyRefused with a code", key, err, ErrorCode(err))
		}
	}
	if err := l.Put(context.Background(), "AWSLogs/1/CloudTrail/us-gov-west-1/k.json.gz", []byte("x"), "", nil); err != nil {
		t.Errorf("Put(valid key) = %v", err)
	}
}
