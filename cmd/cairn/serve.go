package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/ingest"
	"github.com/cairn-audit/cairn/internal/lake"
	"github.com/cairn-audit/cairn/internal/retention"
	"github.com/cairn-audit/cairn/internal/sigv4"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/trail"
)

// Defaults shared by the commands.
const (
	defaultListen  = "127.0.0.1:4579"
	defaultDataDir = "cairn-data"
	storeFile      = "events.duckdb"
	tokenKeyFile   = "token.key"
	serverFile     = "server.json"
	awsCredsFile   = "aws-credentials"
	journalDir     = "journal" // the ingest pipeline's journal (Commit)
)

type serveFlags struct {
	listen, dataDir, config, logFormat, logLevel string
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("cairn serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.listen, "listen", defaultListen, "address to serve the CloudTrail API and /metrics on")
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir, "directory holding the event store and keys")
	fs.StringVar(&f.config, "config", "", "config file (YAML); without one cairn generates an account and a key")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return serve(ctx, ln, f, log, stderr)
}

// serve runs the server on ln until ctx ends, then shuts down in order:
// HTTP (waiting for in-flight calls and their records), the ingest drain,
// the janitor, the store.
func serve(ctx context.Context, ln net.Listener, f serveFlags, log *slog.Logger, stderr io.Writer) error {
	defer ln.Close()
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	cfg, err := loadConfig(f.config, f.dataDir, log, stderr)
	if err != nil {
		return err
	}
	store, err := openStore(f.dataDir, log)
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := loadOrCreateKey(filepath.Join(f.dataDir, tokenKeyFile))
	if err != nil {
		return err
	}

	bks, err := openBuckets(cfg, f.dataDir)
	if err != nil {
		return err
	}
	trails, err := trail.OpenRegistry(f.dataDir)
	if err != nil {
		return err
	}
	trails.WarnRefusedSelectors(log)
	var org *trail.Organization
	if o := cfg.Organization; o != nil {
		org = &trail.Organization{ID: o.ID, ManagementAccount: o.ManagementAccount, Members: o.MemberAccounts}
	}
	trails.SetOrganization(org)
	trailSvc := &trail.Service{Registry: trails, Bucket: bks.trail, Feed: store, MaxPerRegion: cfg.Trails.MaxPerRegion, Organization: org}
	keyring, err := trail.OpenKeyring(f.dataDir, cfg.Delivery.DigestKeyRotation)
	if err != nil {
		return err
	}
	digests, err := trail.NewDigestWriter(f.dataDir, trails, bks.trail, keyring, cfg.Delivery.DigestInterval)
	if err != nil {
		return err
	}
	digests.Logger = log
	handlers := apiserver.TrailHandlers(trailSvc)
	maps.Copy(handlers, apiserver.EventSelectorHandlers(trailSvc))
	maps.Copy(handlers, apiserver.TrailTagHandlers(trailSvc))
	maps.Copy(handlers, apiserver.PublicKeyHandlers(keyring))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lk, err := openLake(f.dataDir, cfg, log, bks, reg)
	if err != nil {
		return err
	}
	defer lk.Close()
	maps.Copy(handlers, apiserver.LakeHandlers(lk))
	// Records a previous run journaled but did not store go into the
	// store before anything is served.
	minFree := int64(cfg.Ingest.MinFreeMB) << 20
	if minFree == 0 {
		minFree = -1 // none: only a write failing for a full disk stops writes
	}
	pipe, err := ingest.Open(ctx, ingest.Config{Store: store, JournalDir: filepath.Join(f.dataDir, journalDir), Logger: log, Registerer: reg,
		QueueSize: cfg.Ingest.QueueSize, AccountMaxCalls: cfg.Ingest.AccountMaxCalls, AccountQueueRecords: cfg.Ingest.AccountQueueRecords,
		DiskDir: f.dataDir, MinFreeBytes: minFree})
	if err != nil {
		return err
	}
	// The gateway's records queue until the pipeline runs below.
	stopGW, err := startGateway(cfg, f.dataDir, pipe, log, reg)
	if err != nil {
		return err
	}
	api := apiserver.New(apiserver.Config{
		Auth:              authenticator{cfg: cfg, v: &sigv4.Verifier{Secret: cfg.Secret}},
		MaxUnverifiedBody: int64(cfg.API.MaxUnverifiedBodyMB) << 20,
		History:           store,
		Recorder:          pipe,
		Retention:         cfg.Retention(),
		TokenKey:          key,
		Logger:            log,
		Registerer:        reg,
		Handlers:          handlers,
		DataHandlers:      apiserver.LakeDataHandlers(lk),
	})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", api)
	// What a client can make the server hold before it is known
	// (docs/security.md): a header of at most MaxHeaderBytes read within
	// ReadHeaderTimeout, a body only once its signature or key is checked
	// (apiserver) read within ReadTimeout, and at most
	// api.max_connections connections. IdleTimeout is longer than the
	// SDKs' idle pools (aws-sdk-go-v2: 90 s), so a client never reuses a
	// connection the server is closing.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln = newLimitListener(ln, cfg.API.MaxConnections)

	pipeCtx, stopPipe := context.WithCancel(context.Background())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(pipeCtx) }()
	janCtx, stopJanitor := context.WithCancel(context.Background())
	janDone := make(chan error, 1)
	jan := &retention.Janitor{Store: store, Retention: cfg.Retention(), Logger: log}
	go func() { janDone <- jan.Run(janCtx) }()
	delCtx, stopDelivery := context.WithCancel(context.Background())
	delDone := make(chan struct{})
	deliverer := &trail.Deliverer{Registry: trails, Feed: store, Bucket: bks.trail, Interval: cfg.Delivery.Interval, Logger: log, Observer: digests,
		Registerer: reg}
	go func() { deliverer.Run(delCtx); close(delDone) }()
	digCtx, stopDigests := context.WithCancel(context.Background())
	digDone := make(chan struct{})
	go func() { digests.Run(digCtx); close(digDone) }()
	insCtx, stopInsights := context.WithCancel(context.Background())
	insDone := make(chan error, 1)
	go func() { insDone <- runInsights(insCtx, cfg, store, store, pipe, trails, log, reg) }()

	lakeCtx, stopLake := context.WithCancel(context.Background())
	lakeDone := make(chan struct{})
	go func() {
		defer close(lakeDone)
		if err := lk.Run(lakeCtx, store, cfg.Lake.IngestInterval); err != nil {
			log.Error("lake: run", "err", err)
		}
	}()

	addr := "http://" + ln.Addr().String()
	if err := writeServerFile(f.dataDir, addr); err != nil {
		log.Warn("could not write the server file", "err", err)
	}
	defer os.Remove(filepath.Join(f.dataDir, serverFile))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("cairn serving the CloudTrail API", "endpoint", addr, "data_dir", f.dataDir,
		"retention_days", int(cfg.Retention()/(24*time.Hour)), "version", version)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	stopGW(shutCtx) // its last records go through the pipeline
	stopInsights()  // before the drain: its last Insights go through the pipeline
	if err := <-insDone; err != nil {
		log.Error("insights", "err", err)
	}
	stopPipe()
	if err := <-pipeDone; err != nil {
		log.Error("ingest drain", "err", err)
	}
	stopJanitor()
	<-janDone
	// After the drain: the last records are stored, so the final delivery
	// takes them too.
	stopDelivery()
	<-delDone
	stopLake()
	<-lakeDone
	stopDigests() // files delivered but not digested yet wait in the data dir
	<-digDone
	return runErr
}

// loadConfig reads the config file, or without one the generated account
// and key of the data dir, announcing a newly generated key once.
func loadConfig(path, dataDir string, log *slog.Logger, stderr io.Writer) (*config.Config, error) {
	if path != "" {
		return config.Load(path)
	}
	cfg, gen, err := config.Generate(dataDir)
	if err != nil {
		return nil, err
	}
	credsPath := filepath.Join(dataDir, awsCredsFile)
	if err := writeAWSCredentials(credsPath, cfg); err != nil {
		return nil, err
	}
	if gen.Created {
		abs, _ := filepath.Abs(credsPath)
		fmt.Fprintf(stderr, "cairn: no --config given, so cairn created account %s with user %q and an access key.\n"+
			"cairn: the key is in %s (cairn's format) and %s (the AWS CLI's); to use it:\n"+
			"    export AWS_SHARED_CREDENTIALS_FILE=%s AWS_DEFAULT_REGION=us-east-1\n",
			gen.AccountID, gen.UserName, gen.Path, abs, abs)
	} else {
		log.Info("using the generated account and key", "path", gen.Path)
	}
	return cfg, nil
}

// writeAWSCredentials writes the first key of cfg as an AWS CLI shared
// credentials file, so the quick start needs no copying of secrets.
func writeAWSCredentials(path string, cfg *config.Config) error {
	id, secret, ok := cfg.FirstKey()
	if !ok {
		return errors.New("config has no access key")
	}
	body := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret)
	if b, err := os.ReadFile(path); err == nil && string(b) == body {
		return nil
	}
	return os.WriteFile(path, []byte(body), 0o600)
}

func openStore(dataDir string, log *slog.Logger) (*duckdb.Store, error) {
	path := filepath.Join(dataDir, storeFile)
	st, err := duckdb.Open(path, duckdb.Options{Logger: log})
	if err != nil {
		if held := serverHolding(dataDir); held != "" {
			return nil, fmt.Errorf("the data dir %s is in use by the cairn server at %s; send records through it with --endpoint-url %s", dataDir, held, held)
		}
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("the data dir %s is in use by another cairn process: %w", dataDir, err)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

// loadOrCreateKey returns the NextToken signing key, creating it once.
func loadOrCreateKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	return key, nil
}

type serverInfo struct {
	PID      int    `json:"pid"`
	Endpoint string `json:"endpoint"`
}

func writeServerFile(dataDir, endpoint string) error {
	b, _ := json.Marshal(serverInfo{PID: os.Getpid(), Endpoint: endpoint})
	return os.WriteFile(filepath.Join(dataDir, serverFile), b, 0o600)
}

// serverHolding returns the endpoint of a live server holding dataDir, or "".
func serverHolding(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, serverFile))
	if err != nil {
		return ""
	}
	var si serverInfo
	if json.Unmarshal(b, &si) != nil || si.PID <= 0 {
		return ""
	}
	if p, err := os.FindProcess(si.PID); err != nil || p.Signal(syscall0) != nil {
		return ""
	}
	return si.Endpoint
}

// maxHeaderBytes bounds a request's header (net/http allows 4 KiB more).
// The SDKs send 1-3 KiB, session tokens included.
const maxHeaderBytes = 16 << 10

// authenticator verifies SigV4 against the configured keys.
type authenticator struct {
	cfg *config.Config
	v   *sigv4.Verifier
}

func (a authenticator) Authenticate(r *http.Request, body []byte) (apiserver.Caller, error) {
	res, err := a.v.Verify(r, body)
	if err != nil {
		var se *sigv4.Error
		if errors.As(err, &se) {
			return apiserver.Caller{}, &awsjson.Error{Code: se.Code, Message: se.Message, Status: se.Status}
		}
		return apiserver.Caller{}, err
	}
	if err := checkService(res.Service); err != nil {
		return apiserver.Caller{}, err
	}
	p, ok := a.cfg.Principal(res.AccessKeyID)
	if !ok {
		return apiserver.Caller{}, &awsjson.Error{Code: "UnrecognizedClientException", Status: http.StatusForbidden,
			Message: "The security token included in the request is invalid."}
	}
	return apiserver.Caller{Principal: audit.Principal{
		AccountID:   p.AccountID,
		UserName:    p.UserName,
		ARN:         p.ARN,
		PrincipalID: p.PrincipalID,
		AccessKeyID: res.AccessKeyID,
		Region:      res.Region,
		Responder:   p.Responder,
	}, Service: res.Service}, nil
}

// openLake opens CloudTrail Lake's database in the data dir.
// StartImport reads s3:// sources from bks.
// reg receives Lake's metrics (nil: none).
func openLake(dataDir string, cfg *config.Config, log *slog.Logger, bks buckets, reg prometheus.Registerer) (*lake.Lake, error) {
	var org *lake.Organization
	if o := cfg.Organization; o != nil {
		org = &lake.Organization{ID: o.ID, ManagementAccount: o.ManagementAccount, Members: o.MemberAccounts}
	}
	threads := cfg.Lake.Threads
	if threads == 0 { // one per core
		threads = runtime.NumCPU()
	}
	lk, err := lake.Open(dataDir, lake.Options{MemoryLimit: cfg.Lake.MemoryLimit, Threads: threads, Organization: org,
		QueryTimeout: cfg.Lake.QueryTimeout, MaxResultBytes: cfg.Lake.MaxResultMB << 20,
		MaxConcurrentQueries: cfg.Lake.MaxConcurrentQueries, MaxRunningQueries: cfg.Lake.MaxRunningQueries,
		MaxRunningQueriesPerAccount: cfg.Lake.MaxRunningQueriesPerAccount,
		MaxHeldResults:              cfg.Lake.MaxHeldResults, MaxHeldResultBytes: int64(cfg.Lake.MaxHeldResultsMB) << 20,
		CheckpointCommits: cfg.Lake.CheckpointCommits, CheckpointWALBytes: int64(cfg.Lake.CheckpointWALMB) << 20,
		MaxStores: cfg.Lake.MaxEventDataStores, ImportRoots: cfg.Lake.ImportRoots, Logger: log, Registerer: reg,
		Buckets: func(name string) (lake.Bucket, bool) { b, ok := bks[name]; return b, ok }})
	if err != nil {
		if held := serverHolding(dataDir); held != "" {
			return nil, fmt.Errorf("the data dir %s is in use by the cairn server at %s", dataDir, held)
		}
		return nil, err
	}
	return lk, nil
}

// AuthenticateHeader checks what of a request's signature needs no body
// (apiserver.HeaderAuthenticator): a caller without a valid signature
// header or with an unknown key, a signature for another service, or a
// wrong signature over a declared payload hash is refused before its body
// is read.
func (a authenticator) AuthenticateHeader(r *http.Request) (bool, error) {
	verified, err := a.v.VerifyHeader(r)
	if err != nil {
		var se *sigv4.Error
		if errors.As(err, &se) {
			return false, &awsjson.Error{Code: se.Code, Message: se.Message, Status: se.Status}
		}
		return false, err
	}
	if sc, err := sigv4.Parse(r); err == nil {
		if err := checkService(sc.Service); err != nil {
			return false, err
		}
	}
	return verified, nil
}

// checkService refuses a signature scoped to a service other than
// CloudTrail's two.
func checkService(service string) error {
	if service != "cloudtrail" && service != "cloudtrail-data" {
		return &awsjson.Error{Code: "InvalidSignatureException", Status: http.StatusForbidden,
			Message: "Credential should be scoped to correct service: 'cloudtrail'. "}
	}
	return nil
}
