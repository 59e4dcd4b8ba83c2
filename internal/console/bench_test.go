package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// BenchmarkEventsPage measures what the console adds to a LookupEvents of
// 50 events: the API call through ServeConsole (over an in-memory store),
// its record, decoding, and rendering the page. The store's own lookup at
// 10M events is measured by bench/lookup.sh (docs/benchmarks.md).
func BenchmarkEventsPage(b *testing.B) {
	t := b
	h := newHarness(t, Config{})
	seed(t, h.st, acctA, "us-east-1", 500, h.clock.now().Add(-time.Hour), "PutObject", false)
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)
	var cookie *http.Cookie
	for _, k := range c.Jar.Cookies(mustURL(h.srv.URL + Prefix)) {
		if k.Name == sessionCookie {
			cookie = k
		}
	}
	if cookie == nil {
		b.Fatal("no session")
	}
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest("GET", Prefix+"events?region=us-east-1&k=EventName&v=PutObject", nil)
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		h.con.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("events = %d", w.Code)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
