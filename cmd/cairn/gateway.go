package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/gateway"
	"github.com/cairn-audit/cairn/internal/lifecycle"
)

// gatewaySessionsFile, in the data dir, keeps the STS credentials the
// gateway learnt (access key IDs and identities, no secrets).
const gatewaySessionsFile = "gateway-sessions.jsonl"

// gatewayServer is the recording gateway on its own listener, as a
// worker.
type gatewayServer struct {
	gw  *gateway.Gateway
	srv *lifecycle.Server
	log *slog.Logger
}

// Run serves until ctx ends, waits for in-flight calls and their records
// (it must stop before the ingest drain), then closes the gateway's
// sessions file.
func (g *gatewayServer) Run(ctx context.Context) error {
	err := g.srv.Run(ctx)
	if cerr := g.gw.Close(); cerr != nil {
		g.log.Error("gateway sessions", "err", cerr)
	}
	return err
}

// newGateway returns the recording gateway listening on its own address
// when the config has a gateway section (nil without one). With
// persist_sessions, the STS credentials it learns are kept in the data dir
// (gatewaySessionsFile) across restarts.
//
// On a shared store (PostgreSQL) the sessions are kept there whatever
// gateway.persist_sessions says: a session learnt through one node must be
// known to the node its next call reaches (docs/scale.md).
func newGateway(cfg *config.Config, dataDir string, state audit.StateStore, principals gateway.Principals, rec gateway.Recorder, log *slog.Logger, reg prometheus.Registerer) (*gatewayServer, error) {
	gc := cfg.Gateway
	if gc == nil {
		return nil, nil
	}
	acct := gc.DefaultAccount
	if acct == "" && len(cfg.Accounts) > 0 {
		acct = cfg.Accounts[0].ID
	}
	sessions := ""
	var sessionState audit.StateStore
	switch {
	case shared(state):
		sessionState = state
	case gc.PersistSessions:
		sessions = filepath.Join(dataDir, gatewaySessionsFile)
	}
	gw, err := gateway.New(gateway.Config{
		Upstreams: gc.Upstreams, TrustedProxies: gc.TrustedProxies, VirtualHostDomains: gc.VirtualHostDomains,
		ExcludeSources: gc.ExcludeSources, ExcludeNames: gc.ExcludeNames, DefaultAccount: acct,
		Principals: principals, Recorder: rec, Logger: log, Registerer: reg,
		MaxSessions: gc.MaxSessions, SessionFile: sessions, SessionState: sessionState,
		MaxBufferedBody: int64(gc.MaxBufferedBodyMB) << 20,
	})
	if err != nil {
		return nil, err
	}
	tcp, err := net.Listen("tcp", gc.Listen)
	if err != nil {
		gw.Close()
		return nil, fmt.Errorf("gateway listen: %w", err)
	}
	ln := newLimitListener(tcp, gc.MaxConnections)
	// No read or write timeouts: multi-GB objects stream through.
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("cairn recording gateway", "listen", "http://"+ln.Addr().String(), "upstreams", len(gc.Upstreams))
	return &gatewayServer{gw: gw, srv: &lifecycle.Server{Server: srv, Listener: ln}, log: log}, nil
}
