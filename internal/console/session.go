package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

// Cookie names. The session cookie holds a random 256-bit token; the
// server keeps only its SHA-256 (in memory and in the session file), so a
// leaked store names no usable cookie.
const (
	sessionCookie = "cairn_session"
	signinCookie  = "cairn_signin"
)

// session is one signed-in browser.
type session struct {
	key       string // hex SHA-256 of the cookie's token
	Principal audit.Principal
	// CSRF is the token every state-changing request of the session
	// carries (form field csrf): an HMAC of the cookie's token, so it is
	// never stored and survives a restart with the session. Set once,
	// under sessions.mu, before any request sees the session.
	CSRF          string
	created, seen time.Time
	saved         time.Time // seen as last written to the file
	version       int64     // the shared store's version (shared.go)
}

// sessions is the session store, bounded by cap, kept in memory and,
// with a file, on disk: created and ended sessions are written before the
// browser is answered (a sign-out stays a sign-out across a restart), the
// sessions' last use when it moved saveEvery past what the file has.
type sessions struct {
	idle, max time.Duration
	cap       int
	now       func() time.Time
	file      string           // "" keeps sessions in memory only
	state     audit.StateStore // set: the sessions every node shares (shared.go)
	keys      Keys
	log       *slog.Logger
	mu        sync.Mutex
	m         map[string]*session
	saveMu    sync.Mutex
}

// saveEvery is how stale a session's last use may be in the file: a
// restart may forget up to this much of it (the session then ends that
// much sooner).
const saveEvery = time.Minute

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// csrfOf is the CSRF token of the session whose cookie holds token.
func csrfOf(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("cairn console csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// create starts a session for p and returns the cookie's token. At cap,
// expired sessions go first, then the least recently used one.
func (s *sessions) create(p audit.Principal) (string, *session) {
	token := randomToken()
	now := s.now()
	ss := &session{key: hashToken(token), Principal: p, CSRF: csrfOf(token), created: now, seen: now}
	s.mu.Lock()
	if len(s.m) >= s.cap {
		for k, v := range s.m {
			if s.expired(v, now) {
				delete(s.m, k)
			}
		}
	}
	for len(s.m) >= s.cap {
		var lru *session
		for _, v := range s.m {
			if lru == nil || v.seen.Before(lru.seen) {
				lru = v
			}
		}
		delete(s.m, lru.key)
	}
	s.m[ss.key] = ss
	s.mu.Unlock()
	if s.state != nil {
		if err := s.putShared(ss); err != nil {
			s.log.Error("console: saving the session to the shared store failed; it works on this node only", "err", err)
		}
		return token, ss
	}
	if err := s.save(); err != nil {
		// The session works until a restart.
		s.log.Error("console: saving the sessions failed", "err", err)
	}
	return token, ss
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.seen) >= s.idle || now.Sub(ss.created) >= s.max
}

// get returns the live session of r's cookie, marking it used.
func (s *sessions) get(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil, false
	}
	key := hashToken(ck.Value)
	now := s.now()
	if s.state != nil {
		return s.getShared(key, ck.Value, now)
	}
	s.mu.Lock()
	ss, ok := s.m[key]
	if ok && s.expired(ss, now) {
		delete(s.m, key) // the file's copy is expired too
		ok = false
	}
	due := false
	if ok {
		if ss.CSRF == "" { // loaded from the file
			ss.CSRF = csrfOf(ck.Value)
		}
		ss.seen = now
		due = s.file != "" && now.Sub(ss.saved) >= saveEvery
	}
	s.mu.Unlock()
	if due {
		if err := s.save(); err != nil {
			s.log.Error("console: saving the sessions failed", "err", err)
		}
	}
	if !ok {
		return nil, false
	}
	return ss, true
}

// delete ends ss, on disk too: it reports an error when the file could
// not be written (the session has ended in memory; a restart before the
// next save would bring it back).
func (s *sessions) delete(ss *session) error {
	s.mu.Lock()
	delete(s.m, ss.key)
	s.mu.Unlock()
	if s.state != nil {
		return s.deleteShared(ss.key)
	}
	return s.save()
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// storedSession is a session in the file: no token, no CSRF token, and
// the principal by access key ID (resolved again at load, so a key taken
// out of the config ends its sessions).
type storedSession struct {
	Key         string    `json:"key"`
	AccessKeyID string    `json:"accessKeyId"`
	Region      string    `json:"region"`
	Created     time.Time `json:"created"`
	Seen        time.Time `json:"seen"`
}

type sessionFile struct {
	Version  int             `json:"version"`
	Sessions []storedSession `json:"sessions"`
}

// save writes the live sessions to the file (atomically, synced).
func (s *sessions) save() error {
	if s.file == "" {
		return nil
	}
	s.saveMu.Lock() // one writer; the last snapshot taken is the last written
	defer s.saveMu.Unlock()
	now := s.now()
	s.mu.Lock()
	f := sessionFile{Version: 1, Sessions: make([]storedSession, 0, len(s.m))}
	for _, ss := range s.m {
		if s.expired(ss, now) {
			continue
		}
		f.Sessions = append(f.Sessions, storedSession{Key: ss.key, AccessKeyID: ss.Principal.AccessKeyID,
			Region: ss.Principal.Region, Created: ss.created, Seen: ss.seen})
	}
	s.mu.Unlock()
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.file, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", s.file, err)
	}
	s.mu.Lock()
	for _, st := range f.Sessions {
		if ss, ok := s.m[st.Key]; ok && st.Seen.After(ss.saved) {
			ss.saved = st.Seen
		}
	}
	s.mu.Unlock()
	return nil
}

// load reads the file's live sessions whose keys are still configured. A
// missing file is no sessions; an unreadable one is logged and ignored
// (everyone signs in again).
func (s *sessions) load() {
	if s.file == "" {
		return
	}
	b, err := os.ReadFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var f sessionFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err == nil && f.Version != 1 {
		err = fmt.Errorf("version %d", f.Version)
	}
	if err != nil {
		s.log.Error("console: the sessions file could not be read; everyone signs in again", "file", s.file, "err", err)
		return
	}
	now := s.now()
	for _, st := range f.Sessions {
		p, ok := s.keys.Principal(st.AccessKeyID)
		if !ok || p.AccountID == "" || len(st.Key) != 64 || !audit.ValidRegion(st.Region) || len(s.m) >= s.cap {
			continue
		}
		if _, known := s.keys.Secret(st.AccessKeyID); !known {
			continue
		}
		p.Region = st.Region
		ss := &session{key: st.Key, Principal: p, created: st.Created, seen: st.Seen, saved: st.Seen}
		if s.expired(ss, now) || st.Seen.After(now.Add(time.Minute)) {
			continue
		}
		s.m[ss.key] = ss
	}
}

// setCookie sets (or with maxAge < 0 clears) a console cookie: HttpOnly,
// SameSite=Strict, Secure when the browser came over TLS (to cairn, or to
// a trusted proxy in front of it).
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		Secure: c.clientOf(r).TLS, SameSite: http.SameSiteStrictMode})
}

type sessionKey struct{}

// signedIn runs h for a request with a live session; others are sent to
// the sign-in page (a GET) or refused (anything else).
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss, ok := c.sessions.get(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.render(w, http.StatusForbidden, "error", page{Title: "Signed out", Error: "Your session has ended. Sign in again."})
			return
		}
		h(w, r, ss)
	}
}

// mutating checks a state-changing request: its csrf form field must be
// its session's token, and an Origin header, when sent, this host.
func (c *Console) mutating(h func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, ss *session) {
		r.Body = http.MaxBytesReader(w, r.Body, 512<<10) // a Lake statement of 64 KiB, URL-encoded
		if !sameOrigin(r) || !equalTokens(r.PostFormValue("csrf"), ss.CSRF) {
			c.cfg.Logger.Warn("console: refused a request without its session's CSRF token", "path", r.URL.Path, "remote", c.clientOf(r).IP)
			c.render(w, http.StatusForbidden, "error", page{Title: "Refused", Session: ss, Region: ss.Principal.Region,
				Error: "This form has expired or did not come from this console. Reload the page and try again."})
			return
		}
		h(w, r, ss)
	}
}

// sameOrigin reports whether r's Origin, if any, is r's own host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// equalTokens compares two tokens in constant time; empty never matches.
func equalTokens(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// limiter counts failed sign-ins per key (an access key ID or a source)
// within a window. Counters of configured access keys are kept apart and
// never evicted (there are as many as the configuration has keys), so
// guessing a real key's secret stays throttled whatever else fills the
// table. The other counters (sources, unknown key IDs) share cap slots;
// one source adds at most its limit of them a window (each failure counts
// against the source too), and when all are in use a new one takes the
// slot of the counter that matters least: one that is not refusing
// anything, fewest failures, oldest window first. So a flood of sources
// never refuses sign-ins from others (no lock-out), and the counters that
// are refusing go last.
type limiter struct {
	window time.Duration
	cap    int
	now    func() time.Time
	mu     sync.Mutex
	m      map[string]*slot // sources and unknown key IDs, at most cap
	kept   map[string]*slot // configured access key IDs
	seq    uint64           // counts failures counted, to order slots by use
}

type slot struct {
	start    time.Time
	failures int
	limit    int
	used     uint64 // seq when a failure was last counted
}

// counter is one key take counts an attempt against.
type counter struct {
	key   string
	limit int
	kept  bool // a configured access key: never evicted
}

func (l *limiter) table(c counter) map[string]*slot {
	if c.kept {
		return l.kept
	}
	return l.m
}

// take counts an attempt against each counter, as a failure until
// forgive takes it back, if each has fewer than its limit of failures in
// the current window; it reports whether it did. Counting at the start,
// under one lock, keeps concurrent attempts within the limit.
func (l *limiter) take(cs []counter) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		t := l.table(c)
		s, ok := t[c.key]
		if ok && now.Sub(s.start) >= l.window {
			delete(t, c.key)
			ok = false
		}
		if ok && s.failures >= c.limit {
			return false
		}
	}
	for _, c := range cs {
		t := l.table(c)
		s, ok := t[c.key]
		if !ok {
			if !c.kept && len(t) >= l.cap {
				l.evict(now, cs)
			}
			s = &slot{start: now, limit: c.limit}
			t[c.key] = s
		}
		s.failures++
		l.seq++
		s.used = l.seq
	}
	return true
}

// evict frees a slot of m: every ended window's, or else the one counter
// that matters least (not refusing, least recently counted), never one of
// the attempt's own counters.
func (l *limiter) evict(now time.Time, own []counter) {
	var victim string
	var vs *slot
	less := func(a, b *slot) bool {
		af, bf := a.failures >= a.limit, b.failures >= b.limit
		if af != bf {
			return !af
		}
		return a.used < b.used
	}
	freed := false
	for k, s := range l.m {
		if now.Sub(s.start) >= l.window {
			delete(l.m, k)
			freed = true
			continue
		}
		if slices.ContainsFunc(own, func(c counter) bool { return !c.kept && c.key == k }) {
			continue
		}
		if vs == nil || less(s, vs) {
			victim, vs = k, s
		}
	}
	if !freed && vs != nil {
		delete(l.m, victim)
	}
}

// forgive takes back an attempt take counted against c (it did not fail).
func (l *limiter) forgive(c counter) {
	l.mu.Lock()
	if s, ok := l.table(c)[c.key]; ok && s.failures > 0 {
		s.failures--
	}
	l.mu.Unlock()
}

// reset forgets c's failures (a successful sign-in with it).
func (l *limiter) reset(c counter) {
	l.mu.Lock()
	delete(l.table(c), c.key)
	l.mu.Unlock()
}

// len returns the counters held (for tests and the metric).
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m) + len(l.kept)
}
