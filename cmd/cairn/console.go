package main

import (
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/console"
	"github.com/cairn-audit/cairn/internal/ingest"
)

// consoleSessionsFile, in the data dir, keeps console sessions across
// restarts (console.persist_sessions).
const consoleSessionsFile = "console-sessions.json"

// handleConsole serves the API at / on mux and, unless the config turns it
// off, the web console at /console/ (a browser's GET / is sent there).
// The console's sign-in checks the configured keys; its pages are API
// calls served by api for the session's principal (api.ServeConsole).
//
// On a shared store (PostgreSQL) the sessions are kept there whatever
// console.persist_sessions says: behind a load balancer a session signed
// in on one node must work on the others (docs/scale.md).
func handleConsole(mux *http.ServeMux, cfg *config.Config, dataDir string, state audit.StateStore, api *apiserver.Server, keys configPrincipals, pipe *ingest.Pipeline,
	log *slog.Logger, reg prometheus.Registerer) {
	c := cfg.Console
	if !c.Enabled {
		mux.Handle("/", api)
		return
	}
	sessionFile := ""
	var sessionState audit.StateStore
	switch {
	case shared(state):
		sessionState = state
	case c.PersistSessions:
		sessionFile = filepath.Join(dataDir, consoleSessionsFile)
	}
	mux.Handle(console.Prefix, console.New(console.Config{SessionFile: sessionFile, State: sessionState, API: api, Keys: keys, Recorder: pipe, Logger: log, Registerer: reg,
		SessionIdle: c.SessionIdle, SessionMax: c.SessionMax, MaxSessions: c.MaxSessions,
		KeyFailures: c.SigninFailuresPerKey, IPFailures: c.SigninFailuresPerAddress, FailureWindow: c.SigninFailureWindow,
		MaxFailureSlots: c.SigninFailureSlots, TrustedProxies: c.TrustedProxies}))
	mux.Handle("/", console.RedirectBrowsers(api))
}

// Secret returns the secret of a configured access key (the console's
// sign-in checks it as the SigV4 verifier does).
func (c configPrincipals) Secret(accessKeyID string) (string, bool) { return c.cfg.Secret(accessKeyID) }
