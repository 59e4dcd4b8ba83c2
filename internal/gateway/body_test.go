package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gathered returns the value of a counter or gauge of reg: the unlabelled
// one, or with a reason, the one labelled reason=reason[0] (0 when absent).
func gathered(t *testing.T, reg *prometheus.Registry, name string, reason ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(reason) > 0 && !hasLabel(m.GetLabel(), "reason", reason[0]) || len(reason) == 0 && len(mf.GetMetric()) != 1 {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	if len(reason) > 0 {
		return 0
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func hasLabel(ls []*dto.LabelPair, name, value string) bool {
	for _, l := range ls {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestBufferedBodyBudget is issue 11 item 4 at the gateway, which
// authenticates no one: the bodies it holds to record their parameters
// are bounded all calls together; beyond the bound a body streams to the
// upstream unread and unchanged, and its call is recorded without its
// body parameters.
func TestBufferedBodyBudget(t *testing.T) {
	type got struct {
		body []byte
	}
	gotc := make(chan got, 10)
	block := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotc <- got{b}
		if r.Header.Get("X-Test-Block") != "" {
			<-block
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		io.WriteString(w, `{"TableNames":[]}`)
	}))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	rec := &collector{}
	reg := prometheus.NewRegistry()
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": up}, Recorder: rec, DefaultAccount: "111111111111",
		Registerer: reg, MaxBufferedBody: 100, SessionFile: ""})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()
	// Deferred after the servers' Close, so it runs before them: a test
	// that fails while the upstream holds a call must not leave the
	// servers' Close waiting for that call for ever.
	var unblockOnce sync.Once
	unblock := func() { unblockOnce.Do(func() { close(block) }) }
	defer unblock()

	call := func(body string, blockUpstream bool) *http.Response {
		r, _ := http.NewRequest("POST", srv.URL+"/", strings.NewReader(body))
		r.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
		r.Header.Set("Content-Type", "application/x-amz-json-1.0")
		// Signed by no one the gateway knows: it verifies nothing.
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIANOBODY/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")
		if blockUpstream {
			r.Header.Set("X-Test-Block", "1")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Error(err) // may run in the held call's goroutine: no Fatal
			return nil
		}
		return resp
	}
	small := `{"Limit":5,"ExclusiveStartTableName":"a"}`

	// Within the budget: parameters recorded.
	mark := rec.mark()
	resp := call(small, false)
	if resp == nil {
		t.FailNow()
	}
	resp.Body.Close()
	if g := <-gotc; string(g.body) != small {
		t.Errorf("upstream got %q; want %q", g.body, small)
	}
	if ev := rec.lastSince(t, "ListTables", mark); !bytes.Contains(ev.RequestParameters, []byte(`"limit":5`)) {
		t.Errorf("requestParameters = %s; want the body's", ev.RequestParameters)
	}
	// The call gives its bytes back as its handler returns, which may be
	// after its client and its record saw it complete.
	waitFor(t, "the first call's bytes given back", func() bool { return gw.bodies.InUse() == 0 })

	// A call holding 90 bytes while its upstream answers slowly.
	held := `{"ExclusiveStartTableName":"` + strings.Repeat("h", 90-len(`{"ExclusiveStartTableName":""}`)) + `"}`
	heldDone := make(chan *http.Response)
	go func() { heldDone <- call(held, true) }()
	if g := <-gotc; string(g.body) != held {
		t.Fatalf("upstream got %q; want %q", g.body, held)
	}
	if v := gathered(t, reg, "cairn_gateway_buffered_body_bytes"); v != 90 {
		t.Fatalf("bytes held = %v; want 90", v)
	}
	// Beyond the budget: streamed through unchanged, recorded without
	// body parameters.
	mark = rec.mark()
	if resp = call(small, false); resp == nil {
		t.FailNow()
	}
	resp.Body.Close()
	if g := <-gotc; string(g.body) != small {
		t.Errorf("upstream got %q beyond the budget; want %q unchanged", g.body, small)
	}
	if ev := rec.lastSince(t, "ListTables", mark); bytes.Contains(ev.RequestParameters, []byte("limit")) {
		t.Errorf("requestParameters = %s beyond the budget; want none from the body", ev.RequestParameters)
	}
	if n := gathered(t, reg, "cairn_gateway_unbuffered_bodies_total"); n != 1 {
		t.Errorf("cairn_gateway_unbuffered_bodies_total = %v; want 1", n)
	}
	unblock()
	if resp := <-heldDone; resp != nil {
		resp.Body.Close()
	}
	rec.lastSince(t, "ListTables", mark+1) // the held call's record: its bytes are given back after it
	waitFor(t, "every call's bytes given back", func() bool { return gw.bodies.InUse() == 0 })
}
