package console

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSessionsSurviveRestart: with a session file, a signed-in browser
// stays signed in (and its forms' CSRF tokens stay valid) across a
// restart; a session signed out, expired meanwhile, or never issued does
// not come back; the file holds no cookie or CSRF token; a damaged file
// signs everyone out instead of failing.
func TestSessionsSurviveRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "console-sessions.json")
	cfg := Config{SessionFile: file, SessionIdle: 30 * time.Minute, SessionMax: 2 * time.Hour}
	h := newHarness(t, cfg)
	cfg.Now = h.clock.now
	kept, out, idle, other := h.browser(t), h.browser(t), h.browser(t), h.browser(t)
	for _, c := range []*http.Client{kept, out, idle, other} {
		h.signIn(t, c, keyA, secretA)
	}
	keptCSRF := h.sessionCSRF(t, kept)
	outCSRF := h.sessionCSRF(t, out)
	if code, _, _ := post(t, out, h.srv.URL+Prefix+"signout", url.Values{"csrf": {outCSRF}}, nil); code != http.StatusSeeOther {
		t.Fatalf("sign-out = %d; want 303", code)
	}
	h.clock.add(20 * time.Minute)
	get(t, kept, h.srv.URL+Prefix+"events") // kept in use; idle not
	get(t, other, h.srv.URL+Prefix+"events")

	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(h.srv.URL)
	for _, ck := range kept.Jar.Cookies(u) {
		if strings.Contains(string(b), ck.Value) {
			t.Errorf("session file holds the %s cookie's value", ck.Name)
		}
	}
	if strings.Contains(string(b), keptCSRF) || strings.Contains(string(b), secretA) {
		t.Error("session file holds a CSRF token or a secret")
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, %v; want 0600", fi.Mode(), err)
	}

	// The restart: a new console over the same file, 15 minutes later.
	h.srv.Close()
	h.clock.add(15 * time.Minute)
	h2 := newHarness(t, cfg)
	t.Run("signed in", func(t *testing.T) {
		if code, _, _ := get(t, kept, h2.srv.URL+Prefix+"events"); code != http.StatusOK {
			t.Errorf("events after the restart = %d; want 200", code)
		}
	})
	t.Run("old CSRF token still valid", func(t *testing.T) {
		if got := h2.sessionCSRF(t, kept); got != keptCSRF {
			t.Errorf("CSRF token after the restart differs")
		}
	})
	t.Run("signed out stays out", func(t *testing.T) {
		if code, _, _ := get(t, out, h2.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
			t.Errorf("signed-out session after the restart = %d; want 303", code)
		}
		// Even with the cookie it had (a stolen copy).
		c := h2.browser(t)
		for _, ck := range out.Jar.Cookies(u) {
			c.Jar.SetCookies(u, []*http.Cookie{ck})
		}
		if code, _, _ := get(t, c, h2.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
			t.Errorf("a signed-out cookie replayed after the restart = %d; want 303", code)
		}
	})
	t.Run("idle expiry counts the downtime", func(t *testing.T) {
		if code, _, _ := get(t, idle, h2.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
			t.Errorf("a session idle 35 minutes across the restart = %d; want 303", code)
		}
	})
	t.Run("forged cookie", func(t *testing.T) {
		c := h2.browser(t)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: randomToken(), Path: Prefix}})
		if code, _, _ := get(t, c, h2.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
			t.Errorf("forged cookie after the restart = %d; want 303", code)
		}
	})
	t.Run("sign out after the restart", func(t *testing.T) {
		if code, _, _ := post(t, other, h2.srv.URL+Prefix+"signout", url.Values{"csrf": {h2.sessionCSRF(t, other)}}, nil); code != http.StatusSeeOther {
			t.Fatalf("sign-out = %d; want 303", code)
		}
		h3 := newHarness(t, cfg)
		if code, _, _ := get(t, other, h3.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
			t.Errorf("session signed out after one restart, after another = %d; want 303", code)
		}
		if code, _, _ := get(t, kept, h3.srv.URL+Prefix+"events"); code != http.StatusOK {
			t.Errorf("kept session after a second restart = %d; want 200", code)
		}
	})
	t.Run("absolute expiry", func(t *testing.T) {
		h.clock.add(2 * time.Hour)
		h4 := newHarness(t, cfg)
		if code, _, _ := get(t, kept, h4.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
			t.Errorf("session past session_max after a restart = %d; want 303", code)
		}
	})
	for name, content := range map[string]string{
		"damaged":       `{"version":1,"sessions":[{"key":`,
		"other version": `{"version":9,"sessions":[]}`,
		"hostile":       `{"version":1,"sessions":[{"key":"x","accessKeyId":"AKIAALICE00000000001","region":"../../etc"}]}`,
	} {
		t.Run(name+" file", func(t *testing.T) {
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			h5 := newHarness(t, cfg)
			if n := h5.con.sessions.len(); n != 0 {
				t.Errorf("%d sessions from a %s file; want 0", n, name)
			}
			c := h5.browser(t)
			if code := h5.signIn(t, c, keyA, secretA); code != http.StatusSeeOther {
				t.Errorf("sign-in over a %s file = %d; want 303", name, code)
			}
		})
	}
}

// TestSignOutNotSaved: a sign-out the session file cannot take is not
// reported as done (the session has ended in memory; a restart before
// the next save would bring it back).
func TestSignOutNotSaved(t *testing.T) {
	file := filepath.Join(t.TempDir(), "console-sessions.json")
	h := newHarness(t, Config{SessionFile: file})
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)
	csrf := h.sessionCSRF(t, c)
	u, _ := url.Parse(h.srv.URL + Prefix)
	replay := h.browser(t)
	replay.Jar.SetCookies(u, c.Jar.Cookies(u))
	// The file's place taken by a folder: the atomic rename fails, even
	// for root.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	code, body, _ := post(t, c, h.srv.URL+Prefix+"signout", url.Values{"csrf": {csrf}}, nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "could not save it") {
		t.Errorf("sign-out that cannot be saved = %d; want 503 saying so", code)
	}
	if code, _, _ := get(t, replay, h.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
		t.Errorf("the signed-out cookie replayed = %d; want 303 (ended in memory)", code)
	}
}
