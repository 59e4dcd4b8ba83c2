package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

type signinData struct {
	CSRF, AccessKeyID, Next string
}

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request) {
	c.renderSignin(w, r, http.StatusOK, "", "")
}

// renderSignin shows the sign-in form with a fresh sign-in token, held in
// a cookie and the form (a cross-site form cannot carry both).
func (c *Console) renderSignin(w http.ResponseWriter, r *http.Request, status int, msg, keyID string) {
	token := randomToken()
	c.setCookie(w, r, signinCookie, token, Prefix+"signin", 600)
	c.render(w, status, "signin", page{Title: "Sign in", Region: c.cfg.DefaultRegion, Error: msg,
		Data: signinData{CSRF: token, AccessKeyID: keyID, Next: safeNext(r.FormValue("next"))}})
}

// safeNext keeps a post-sign-in destination inside the console: a path
// under Prefix, still under it once dot segments are resolved (as
// http.Redirect and browsers do), with no backslash (a slash to browsers)
// and no control character (browsers strip tabs and newlines).
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(path.Clean(u.Path)+"/", Prefix) {
		return ""
	}
	return next
}

// signin checks an access key ID and secret as SigV4 keys are checked
// (the configured secret, compared in constant time), throttles failures
// per key and per address, and records the attempt as a ConsoleLogin
// event in the key's account.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.renderSignin(w, r, http.StatusBadRequest, "The sign-in form could not be read.", "")
		return
	}
	keyID := strings.TrimSpace(r.PostFormValue("access_key_id"))
	secret := r.PostFormValue("secret_access_key")
	ck, err := r.Cookie(signinCookie)
	if err != nil || !sameOrigin(r) || !equalTokens(ck.Value, r.PostFormValue("csrf")) {
		c.signins.WithLabelValues("expired_form").Inc()
		c.renderSignin(w, r, http.StatusForbidden, "The sign-in form expired. Sign in again.", "")
		return
	}
	if len(keyID) > 128 {
		keyID = keyID[:128]
	}
	ip := c.clientOf(r).IP
	want, known := c.cfg.Keys.Secret(keyID)
	keys := []counter{{key: "key:" + keyID, limit: c.cfg.KeyFailures, kept: known}, {key: throttleKey(ip), limit: c.cfg.IPFailures}}
	if !c.failures.take(keys) {
		c.signins.WithLabelValues("throttled").Inc()
		c.cfg.Logger.Warn("console: sign-in refused after too many failures", "access_key_id", keyID, "remote", ip)
		c.renderSignin(w, r, http.StatusTooManyRequests, "Too many failed sign-ins. Wait a few minutes and try again.", keyID)
		return
	}
	region := r.PostFormValue("region")
	if !audit.ValidRegion(region) {
		region = c.cfg.DefaultRegion
	}
	p, _ := c.cfg.Keys.Principal(keyID)
	// The same work whether the key exists or not.
	hs, hw := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(want))
	ok := subtle.ConstantTimeCompare(hs[:], hw[:]) == 1 && known && secret != ""
	if !known || p.AccountID == "" {
		// No account to record it in (as the API does not record calls
		// that fail authentication): logged, and counted by take.
		c.signins.WithLabelValues("unknown_key").Inc()
		c.cfg.Logger.Warn("console: sign-in with an unknown access key", "access_key_id", keyID, "remote", ip)
		c.renderSignin(w, r, http.StatusUnauthorized, "The access key ID or secret access key is wrong.", keyID)
		return
	}
	p.Region = region
	if err := c.recordSignIn(r, p, ok); err != nil {
		// A sign-in is not granted without its durable record.
		c.cfg.Logger.Error("console: recording a sign-in failed", "access_key_id", keyID, "err", err)
		c.failures.forgive(keys[0])
		c.failures.forgive(keys[1])
		c.renderSignin(w, r, http.StatusServiceUnavailable, "The sign-in could not be recorded. Try again later.", keyID)
		return
	}
	if !ok {
		c.signins.WithLabelValues("failure").Inc()
		c.renderSignin(w, r, http.StatusUnauthorized, "The access key ID or secret access key is wrong.", keyID)
		return
	}
	c.failures.reset(keys[0])
	c.failures.forgive(keys[1])
	c.signins.WithLabelValues("success").Inc()
	if old, ok := c.sessions.get(r); ok {
		// A new session ID at each sign-in; the old one ends.
		if err := c.sessions.delete(old); err != nil {
			c.cfg.Logger.Error("console: saving the sessions failed", "err", err)
		}
	}
	token, _ := c.sessions.create(p)
	c.setCookie(w, r, sessionCookie, token, Prefix, int(c.cfg.SessionMax.Seconds()))
	c.setCookie(w, r, signinCookie, "", Prefix+"signin", -1)
	next := safeNext(r.PostFormValue("next"))
	if next == "" {
		next = Prefix + "events?region=" + region
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) recordSignIn(r *http.Request, p audit.Principal, ok bool) error {
	s := audit.SignIn{Principal: p, Time: c.cfg.Now(), EventID: c.cfg.NewID(), SourceIP: c.clientOf(r).IP,
		UserAgent: r.UserAgent(), LoginTo: c.consoleURL(r), Success: ok}
	if r.TLS != nil {
		s.TLS = &audit.CallTLS{Version: r.TLS.Version, CipherSuite: audit.CipherSuiteName(r.TLS.CipherSuite), Host: r.Host}
	}
	raw, err := audit.SignInRecord(s).Marshal()
	if err != nil {
		return err
	}
	rec, err := audit.Extract(raw)
	if err != nil {
		return err
	}
	return c.cfg.Recorder.Commit(context.WithoutCancel(r.Context()), rec)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, ss *session) {
	err := c.sessions.delete(ss)
	c.setCookie(w, r, sessionCookie, "", Prefix, -1)
	if err != nil {
		// Ended here, but not yet on disk: say so rather than pretend.
		c.cfg.Logger.Error("console: saving a sign-out failed", "err", err)
		c.render(w, http.StatusServiceUnavailable, "error", page{Title: "Signed out",
			Error: "You are signed out, but the server could not save it; a restart now could restore the session. Try signing out again after signing in."})
		return
	}
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

func (c *Console) consoleURL(r *http.Request) string {
	scheme := "http"
	if c.clientOf(r).TLS {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix
}
