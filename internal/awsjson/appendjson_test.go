package awsjson

import (
	"testing"
	"time"
)

func TestTimestampAppendJSON(t *testing.T) {
	for _, ms := range []int64{0, 1, 500, 1441139757497, 1700000000500, 1700000000000, -1500} {
		ts := NewTimestamp(time.UnixMilli(ms))
		want, _ := encode(ts)
		if got := ts.AppendJSON([]byte("x")); string(got) != "x"+string(want) {
			t.Fatalf("%d: AppendJSON %s, encoding/json %s", ms, got, want)
		}
	}
}
