package main

import (
	"context"
	"errors"
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
)

// gatewaySessionsFile, in the data dir, keeps the STS credentials the
// gateway learnt (access key IDs and identities, no secrets).
const gatewaySessionsFile = "gateway-sessions.jsonl"

// gatewayPrincipals gives the gateway the config file's users: the
// principal of each access key, without its secret.
type gatewayPrincipals struct{ cfg *config.Config }

// Principal returns the principal of a configured access key.
func (g gatewayPrincipals) Principal(accessKeyID string) (audit.Principal, bool) {
	p, ok := g.cfg.Principal(accessKeyID)
	if !ok {
		return audit.Principal{}, false
	}
	return audit.Principal{AccountID: p.AccountID, UserName: p.UserName, ARN: p.ARN, PrincipalID: p.PrincipalID,
		AccessKeyID: p.AccessKeyID}, true
}

// startGateway runs the recording gateway on its own address when the
// config has a gateway section. stop shuts it down (waiting for in-flight
// calls and their records) and must run before the ingest drain.
// With persist_sessions, the STS credentials it learns are kept in the
// data dir (gatewaySessionsFile) across restarts.
func startGateway(cfg *config.Config, dataDir string, rec gateway.Recorder, log *slog.Logger, reg prometheus.Registerer) (stop func(context.Context), err error) {
	gc := cfg.Gateway
	if gc == nil {
		return func(context.Context) {}, nil
	}
	acct := gc.DefaultAccount
	if acct == "" && len(cfg.Accounts) > 0 {
		acct = cfg.Accounts[0].ID
	}
	sessions := ""
	if gc.PersistSessions {
		sessions = filepath.Join(dataDir, gatewaySessionsFile)
	}
	gw, err := gateway.New(gateway.Config{
		Upstreams: gc.Upstreams, TrustedProxies: gc.TrustedProxies, VirtualHostDomains: gc.VirtualHostDomains,
		ExcludeSources: gc.ExcludeSources, ExcludeNames: gc.ExcludeNames, DefaultAccount: acct,
		Principals: gatewayPrincipals{cfg}, Recorder: rec, Logger: log, Registerer: reg,
		MaxSessions: gc.MaxSessions, SessionFile: sessions,
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("gateway", "err", err)
		}
	}()
	log.Info("cairn recording gateway", "listen", "http://"+ln.Addr().String(), "upstreams", len(gc.Upstreams))
	return func(ctx context.Context) {
		if err := srv.Shutdown(ctx); err != nil {
			log.Error("gateway shutdown", "err", err)
		}
		<-done
		if err := gw.Close(); err != nil {
			log.Error("gateway sessions", "err", err)
		}
	}, nil
}
