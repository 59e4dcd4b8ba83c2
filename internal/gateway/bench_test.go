package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

type discard struct{}

func (discard) Enqueue(context.Context, ...audit.Record) error { return nil }

// BenchmarkGateway measures the same S3 calls against moto_server directly
// and through the gateway (records built and enqueued; the store is not
// part of it): small GetObject calls (latency; p50 reported) and 8 MiB
// PutObject calls (throughput).
func BenchmarkGateway(b *testing.B) {
	moto := startMoto(b)
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": moto}, Recorder: discard{}, DefaultAccount: "111111111111"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}
	cl := &http.Client{Transport: tr}
	auth := "AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
	do := func(method, u string, body []byte) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, u, rd)
		req.Header.Set("Authorization", auth)
		resp, err := cl.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			b.Fatalf("%s %s: %s", method, u, resp.Status)
		}
	}
	do("PUT", moto.String()+"/bench-bucket", nil)
	do("PUT", moto.String()+"/bench-bucket/small", []byte("hello"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	for _, target := range []struct{ name, base string }{{"direct", moto.String()}, {"gateway", srv.URL}} {
		b.Run("GetObject-small/"+target.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				do("GET", target.base+"/bench-bucket/small", nil)
				lat = append(lat, time.Since(t0))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
		})
		b.Run("PutObject-8MiB/"+target.name, func(b *testing.B) {
			b.SetBytes(int64(len(big)))
			for i := 0; i < b.N; i++ {
				do("PUT", target.base+fmt.Sprintf("/bench-bucket/big%d", i%4), big)
			}
		})
	}
}
