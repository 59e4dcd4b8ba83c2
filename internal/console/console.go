// Package console is cairn's web console: Event History, trails and sign-in
// in a browser, served by `cairn serve` at /console/ on the API's address.
//
// It is an edge. A browser signs in with an access key ID and its secret,
// checked against the configured keys as SigV4 keys are; its session then
// sees exactly what that key sees through the API, because every page is
// made of API calls served by the API server's own dispatch, handlers and
// recording (API.ServeConsole): each is recorded in Event History as the
// call it is, with sessionCredentialFromConsole "true" and the console's
// userAgent, as AWS records console use. Sign-ins are recorded as
// ConsoleLogin events. Pages are html/template with embedded CSS and
// JavaScript of its own; nothing is loaded from another host.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
)

// UserAgent is the userAgent of the API calls the console makes, as
// recorded in Event History.
const UserAgent = "cairn-console"

// Prefix is where the console is served.
const Prefix = "/console/"

// API serves the CloudTrail operations the console calls, for a principal
// the console verified (apiserver.Server.ServeConsole): r carries the
// operation's X-Amz-Target and JSON body; the answer is written to w as
// the API answers a signed call, and the call is recorded.
type API interface {
	ServeConsole(w http.ResponseWriter, r *http.Request, p audit.Principal)
}

// Keys are the configured access keys.
type Keys interface {
	// Secret returns the secret of an access key ID.
	Secret(accessKeyID string) (secret string, ok bool)
	// Principal returns the user an access key ID belongs to.
	Principal(accessKeyID string) (audit.Principal, bool)
}

// Recorder durably stores records (the ingest pipeline); Commit returns
// once they are durable.
type Recorder interface {
	Commit(ctx context.Context, records ...audit.Record) error
}

// Defaults of Config's limits.
const (
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionMax      = 12 * time.Hour
	DefaultMaxSessions     = 1000
	DefaultKeyFailures     = 5
	DefaultIPFailures      = 20
	DefaultFailureWindow   = 15 * time.Minute
	DefaultMaxFailureSlots = 10000
	DefaultRegion          = "us-east-1"
)

// Config configures a Console. API, Keys and Recorder are required; the
// limits' zero values take the defaults above.
type Config struct {
	API      API
	Keys     Keys
	Recorder Recorder
	// SessionIdle ends a session unused for this long; SessionMax ends
	// any session this long after its sign-in.
	SessionIdle, SessionMax time.Duration
	// SessionFile, if set, keeps the sessions across restarts (only the
	// SHA-256 of each cookie's token, its access key ID, region and
	// times; mode 0600). Empty: sessions live in memory only.
	SessionFile string
	// State, if set, keeps the sessions in a StateStore that other
	// cairn nodes share (one key a session under "console-sessions/",
	// the same fields as the file), instead of SessionFile: a session
	// signed in on one node works on every node, and a sign-out on one
	// ends it on all (each request checks the store).
	State audit.StateStore
	// MaxSessions bounds the sessions held in memory; a sign-in beyond it
	// ends the least recently used session.
	MaxSessions int
	// KeyFailures and IPFailures are the failed sign-ins allowed per
	// access key ID and per source IP within FailureWindow; beyond them
	// sign-ins are refused until the window ends. MaxFailureSlots bounds
	// the unknown access key IDs and source addresses tracked (configured
	// keys are always tracked); while all are in use, a new one takes the
	// slot of the one that matters least (limiter).
	KeyFailures, IPFailures int
	FailureWindow           time.Duration
	MaxFailureSlots         int
	// TrustedProxies are the peers whose X-Forwarded-For names the
	// browser's address and whose X-Forwarded-Proto https means the
	// browser used TLS; from any other peer both headers are ignored.
	TrustedProxies []*net.IPNet
	// DefaultRegion is the region a sign-in picks unless told.
	DefaultRegion string
	Now           func() time.Time
	NewID         func() string
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// Console is the console's http.Handler, for Prefix.
type Console struct {
	cfg      Config
	pages    map[string]*template.Template
	static   http.Handler
	mux      *http.ServeMux
	sessions *sessions
	failures *limiter
	signins  *prometheus.CounterVec
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns a Console.
func New(cfg Config) *Console {
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.KeyFailures <= 0 {
		cfg.KeyFailures = DefaultKeyFailures
	}
	if cfg.IPFailures <= 0 {
		cfg.IPFailures = DefaultIPFailures
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = DefaultFailureWindow
	}
	if cfg.MaxFailureSlots <= 0 {
		cfg.MaxFailureSlots = DefaultMaxFailureSlots
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = DefaultRegion
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = audit.NewID
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{
		cfg:   cfg,
		pages: parsePages(),
		sessions: &sessions{idle: cfg.SessionIdle, max: cfg.SessionMax, cap: cfg.MaxSessions, now: cfg.Now, file: cfg.SessionFile,
			state: cfg.State, keys: cfg.Keys, log: cfg.Logger, m: map[string]*session{}},
		failures: &limiter{window: cfg.FailureWindow, cap: cfg.MaxFailureSlots, now: cfg.Now, m: map[string]*slot{}, kept: map[string]*slot{}},
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_console_signins_total",
			Help: "Console sign-ins by outcome (success, failure, unknown_key, throttled, expired_form).",
		}, []string{"outcome"}),
	}
	c.sessions.load()
	sub, _ := fs.Sub(staticFS, "static")
	c.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(c.signins, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_console_sessions", Help: "Console sessions held.",
		}, func() float64 { return float64(c.sessions.len()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_console_signin_failure_counters", Help: "Failed sign-in counters held (configured keys, unknown keys and sources).",
		}, func() float64 { return float64(c.failures.len()) }))
	}
	m := http.NewServeMux()
	m.HandleFunc("GET "+Prefix+"{$}", c.home)
	m.Handle("GET "+Prefix+"static/", c.static)
	m.HandleFunc("GET "+Prefix+"signin", c.signinForm)
	m.HandleFunc("POST "+Prefix+"signin", c.signin)
	m.HandleFunc("POST "+Prefix+"signout", c.signedIn(c.mutating(c.signout)))
	m.HandleFunc("GET "+Prefix+"events", c.signedIn(c.events))
	m.HandleFunc("GET "+Prefix+"event", c.signedIn(c.event))
	m.HandleFunc("GET "+Prefix+"events/download", c.signedIn(c.download))
	m.HandleFunc("GET "+Prefix+"trails", c.signedIn(c.trails))
	m.HandleFunc("GET "+Prefix+"insights", c.signedIn(c.insights))
	m.HandleFunc("GET "+Prefix+"insight", c.signedIn(c.insight))
	m.HandleFunc("GET "+Prefix+"lake", c.signedIn(c.lake))
	m.HandleFunc("POST "+Prefix+"lake/run", c.signedIn(c.mutating(c.lakeRun)))
	m.HandleFunc("POST "+Prefix+"lake/create", c.signedIn(c.mutating(c.lakeCreate)))
	m.HandleFunc("POST "+Prefix+"lake/protect", c.signedIn(c.mutating(c.lakeProtect)))
	m.HandleFunc("POST "+Prefix+"lake/delete", c.signedIn(c.mutating(c.lakeDelete)))
	m.HandleFunc("GET "+Prefix+"lake/query", c.signedIn(c.lakeQuery))
	m.HandleFunc("GET "+Prefix+"lake/query/download", c.signedIn(c.lakeDownload))
	m.HandleFunc("POST "+Prefix+"trails/logging", c.signedIn(c.mutating(c.trailLogging)))
	m.HandleFunc("POST "+Prefix+"trails/create", c.signedIn(c.mutating(c.trailCreate)))
	m.HandleFunc("POST "+Prefix+"trails/delete", c.signedIn(c.mutating(c.trailDelete)))
	c.mux = m
	return c
}

func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{"list": func(s ...string) []string { return s }}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return pages
}

// ServeHTTP serves the console under Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: with it, Chrome sends Origin: null on form posts
	c.mux.ServeHTTP(w, r)
}

// RedirectBrowsers returns api with GET / from a browser (Accept names
// text/html, no SigV4 in the header or the query) redirected to the
// console; every other request, signed or not, gets api's answer.
func RedirectBrowsers(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/" && strings.Contains(r.Header.Get("Accept"), "text/html") &&
			r.Header.Get("Authorization") == "" && r.URL.Query().Get("X-Amz-Signature") == "" && r.Header.Get("X-Amz-Target") == "" {
			http.Redirect(w, r, Prefix, http.StatusFound)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.sessions.get(r); ok {
		http.Redirect(w, r, Prefix+"events", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// page is what every page's template gets.
type page struct {
	Title   string
	Nav     string
	Session *session
	Region  string
	Regions []string
	Error   string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if p.Regions == nil {
		p.Regions = regions()
	}
	if err := c.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.cfg.Logger.Error("console: rendering a page failed", "page", name, "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// apiError is an error the API answered a console call with.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// call makes one API call for principal p (its Region the region the page
// shows) with input in, decoding the answer into out.
func (c *Console) call(r *http.Request, p audit.Principal, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	// The call comes from the browser (its address as the trusted
	// proxies tell it: the record's sourceIPAddress).
	req.RemoteAddr, req.Host = net.JoinHostPort(c.clientOf(r).IP, "0"), r.Host
	req.Header.Set("X-Amz-Target", "CloudTrail_20131101."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("User-Agent", UserAgent)
	rw := &bufferWriter{header: http.Header{}}
	c.cfg.API.ServeConsole(rw, req, p)
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if rw.status != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(rw.buf.Bytes(), &e)
		if e.Type == "" {
			e.Type = "InternalFailure"
		}
		return &apiError{Status: rw.status, Code: e.Type, Message: e.Message}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(rw.buf.Bytes(), out)
}

// errorText is the message a page shows for err.
func errorText(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.Message == "" {
			return ae.Code
		}
		return ae.Code + ": " + ae.Message
	}
	if errors.Is(err, context.Canceled) {
		return "The request was canceled."
	}
	return "The request failed."
}

// bufferWriter holds an API answer.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}
func (b *bufferWriter) WriteHeader(s int) {
	if b.status == 0 {
		b.status = s
	}
}

// regions returns the region picker's choices (AWS's commercial regions).
func regions() []string {
	return []string{
		"us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1", "ap-south-1", "ap-south-2",
		"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-northeast-1", "ap-northeast-2",
		"ap-northeast-3", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2",
		"eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1", "il-central-1", "me-south-1", "me-central-1", "sa-east-1",
	}
}
