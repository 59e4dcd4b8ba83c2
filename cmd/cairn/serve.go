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
	"net/url"
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
	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/lake"
	lakeduckdb "github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	lakepostgres "github.com/cairn-audit/cairn/internal/lake/postgres"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/lifecycle"
	"github.com/cairn-audit/cairn/internal/retention"
	"github.com/cairn-audit/cairn/internal/sigv4"
	"github.com/cairn-audit/cairn/internal/statefile"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/store/postgres"
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
	// nodeID names the node among those sharing a PostgreSQL store
	// (--node-id; empty: the config's cluster.node_id, else the host
	// name).
	nodeID string
	// cpuProfile names a file for a CPU profile of the whole run
	// (--cpuprofile), written when the server stops.
	cpuProfile string
	// traceFile names a file for a runtime trace of the whole run
	// (--trace), complete once the server stops.
	traceFile string
	// memLog names a file for the server's memory by part every 5 s
	// (--memlog): where a StartImport's memory goes (issue 15).
	memLog string
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
	fs.StringVar(&f.nodeID, "node-id", "", "this node's name among the nodes sharing a PostgreSQL store, in its leases and logs\n(default: the config's cluster.node_id, else the host name)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the server's run to this file, complete once it stops (go tool pprof)")
	fs.StringVar(&f.memLog, "memlog", "", "write the server's memory by part (RSS by kind, Go's heap, CloudTrail Lake's and Event History's DuckDB by tag) to this file every 5s (issue 15)")
	fs.StringVar(&f.traceFile, "trace", "", "write a runtime trace of the server's run to this file, complete once it stops (go tool trace; -pprof=sync shows which stage waits on which)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn serve [flags]\n\nServes the CloudTrail API (and /metrics, /healthz) on --listen, recording every call;\n"+
			"keeps Event History, trails, CloudTrail Lake and Insights in --data-dir. Without --config,\n"+
			"cairn creates an account and an access key on the first start and says where they are.\n"+
			"SIGINT or SIGTERM stops it gracefully (calls in flight are answered and recorded).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	if f.nodeID != "" && !config.ValidNodeID(f.nodeID) {
		return usageError{fmt.Sprintf("--node-id wants 1 to 128 letters, digits and . _ : - (like cairn-1), got %q", f.nodeID)}
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	if f.traceFile != "" {
		stop, err := startTrace(f.traceFile)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	return serve(ctx, ln, f, log, stderr)
}

// serve runs the server on ln until ctx ends, then shuts down in order
// (one lifecycle.Group): HTTP (waiting for in-flight calls and their
// records), the ingest drain, the janitor, delivery, the stores.
func serve(ctx context.Context, ln net.Listener, f serveFlags, log *slog.Logger, stderr io.Writer) error {
	defer ln.Close()
	noteDataDirInGit(f.dataDir, stderr)
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	cfg, err := loadConfig(f.config, f.dataDir, log, stderr)
	if err != nil {
		return err
	}
	noteDroppedGeneratedKey(f.config, f.dataDir, cfg, stderr)
	warnOpenProxies(cfg, log)
	// Go's soft memory limit for the server's life, as an offline import
	// has (issue 15: RSS at most 1 GB during a 10M import through the
	// server): without it the collector let the heap grow to twice what
	// was live, 876 MB of goal at 438 MB live at the end of a 10M import
	// (peak RSS 1,078 MiB; docs/store.md, "Memory of a server's import").
	// Put back after the store is closed (deferred first, runs last).
	defer limitGoMemoryAt(serveGoMemory)()
	store, err := openStore(ctx, cfg, f.dataDir, log, true)
	if err != nil {
		return err
	}
	defer store.Close()
	node, err := nodeID(f.nodeID, cfg)
	if err != nil {
		return err
	}
	state := openState(store, f.dataDir)
	key, err := loadOrCreateKey(ctx, state)
	if err != nil {
		return err
	}

	bks, err := openBuckets(cfg, f.dataDir)
	if err != nil {
		return err
	}
	trails, err := openTrails(ctx, state, f.dataDir, log)
	if err != nil {
		return err
	}
	trails.WarnRefusedSelectors(log)
	var org *audit.Organization
	if o := cfg.Organization; o != nil {
		org = &audit.Organization{ID: o.ID, ManagementAccount: o.ManagementAccount, Members: o.MemberAccounts}
	}
	trails.SetOrganization(org)
	trailSvc := &trail.Service{Registry: trails, Bucket: bks.trail, Feed: store, MaxPerRegion: cfg.Trails.MaxPerRegion, Organization: org}
	keyring, err := openKeyring(ctx, state, f.dataDir, cfg.Delivery.DigestKeyRotation)
	if err != nil {
		return err
	}
	digestState := state // the chains: shared, or nil for the data dir's file
	if !shared(state) {
		digestState = nil
	}
	digests, err := trail.NewDigestWriter(trail.DigestConfig{Dir: f.dataDir, State: digestState, Trails: trails, Bucket: bks.trail, Keys: keyring,
		Interval: cfg.Delivery.DigestInterval, Logger: log})
	if err != nil {
		return err
	}
	handlers := apiserver.TrailHandlers(trailSvc)
	maps.Copy(handlers, apiserver.EventSelectorHandlers(trailSvc))
	maps.Copy(handlers, apiserver.PublicKeyHandlers(keyring))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st, ok := store.(sealedStatser); ok {
		reg.MustRegister(sealedCollector{st})
	}
	// Work that must have one writer runs under a lease: in PostgreSQL
	// when nodes share it, else always held (docs/scale.md).
	var leases lease.Table = &lease.Local{}
	if t, ok := store.(interface{ Leases() lease.Table }); ok {
		leases = t.Leases()
	}
	holder := lease.NewHolder(lease.Config{Table: leases, Node: node, TTL: cfg.Cluster.LeaseTTL, Logger: log, Registerer: reg})
	lk, err := openLake(ctx, f.dataDir, cfg, log, bks, reg, backgroundFeed{feed: store}, lakeCluster{state: state, node: node})
	if err != nil {
		return err
	}
	defer lk.Close() // after the group: nothing runs under it then
	if f.memLog != "" {
		stop, err := startServeMemLog(f.memLog, lk, store)
		if err != nil {
			return err
		}
		defer stop()
	}
	maps.Copy(handlers, apiserver.LakeHandlers(lk))
	maps.Copy(handlers, apiserver.TagHandlers(trailSvc, lk))
	// Records a previous run journaled but did not store go into the
	// store before anything is served.
	minFree := int64(cfg.Ingest.MinFreeMB) << 20
	if minFree == 0 {
		minFree = -1 // none: only a write failing for a full disk stops writes
	}
	// ImportRecords is answered from the journal, its counts from the
	// store's key check, when the store has one and is this process's
	// alone (DuckDB): a PostgreSQL store's other nodes have records in
	// flight this one does not see, so there it waits for the store.
	keys, _ := store.(ingest.KeyChecker)
	if cfg.Store.Postgres != "" {
		keys = nil
	}
	pipe, err := ingest.Open(ctx, ingest.Config{Store: store, Keys: keys, JournalDir: filepath.Join(f.dataDir, journalDir), Logger: log, Registerer: reg,
		QueueSize: cfg.Ingest.QueueSize, AccountMaxCalls: cfg.Ingest.AccountMaxCalls, AccountQueueRecords: cfg.Ingest.AccountQueueRecords,
		DiskDir: f.dataDir, MinFreeBytes: minFree})
	if err != nil {
		return err
	}
	// A worker failing stops the server: what would fail at once is
	// refused before anything is served.
	if err := insightParams(cfg.Insights).Validate(); cfg.Insights.Live != "off" && err != nil {
		return fmt.Errorf("insights parameters: %w", err)
	}
	principals := configPrincipals{cfg}
	gw, err := newGateway(cfg, f.dataDir, state, principals, pipe, log, reg)
	if err != nil {
		return err
	}
	// `cairn insights --endpoint-url` runs the detector here, next to the
	// store; its Insights go through the pipeline.
	// Live detection matches what the store holds, off the ingest path.
	det, err := newDetector(cfg, f.dataDir, state, store, log, reg)
	if err != nil {
		return err
	}
	var findings map[string]apiserver.Handler
	if det != nil {
		defer det.Close() // after the group
		findings = apiserver.FindingsHandlers(det)
	}
	insJobs := insights.NewJobs(insights.JobsConfig{Feed: store, History: store, Sink: pipe, Params: insightParams(cfg.Insights),
		MaxRunning: cfg.Insights.MaxRuns, Logger: log})
	api := apiserver.New(apiserver.Config{
		Auth:              authenticator{principals: principals, v: &sigv4.Verifier{Secret: cfg.Secret}},
		MaxUnverifiedBody: int64(cfg.API.MaxUnverifiedBodyMB) << 20,
		History:           store,
		Recorder:          pipe,
		Retention:         cfg.Retention(),
		TokenKey:          key,
		Logger:            log,
		Registerer:        reg,
		Handlers:          handlers,
		InsightsHandlers:  apiserver.InsightsHandlers(insJobs),
		FindingsHandlers:  findings,
		DataHandlers:      apiserver.LakeDataHandlers(lk),
		TrustedProxies:    cfg.API.TrustedProxies,
	})
	// The store's last lookups before the restart run through the API's
	// LookupEvents handler and encoder before the listener answers
	// (results discarded, nothing recorded): the first calls of a
	// restarted server no longer pay for their first run (issue 19).
	if sl, ok := store.(interface{ SavedLookups() []audit.Query }); ok {
		if qs := sl.SavedLookups(); len(qs) > 0 {
			t0 := time.Now()
			n := api.WarmLookups(ctx, qs, warmBudget)
			log.Info("api: the saved lookups run through LookupEvents before serving", "lookups", n, "took", time.Since(t0).Round(time.Millisecond))
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	handleConsole(mux, cfg, f.dataDir, state, api, principals, pipe, log, reg) // "/": the API, and the console at /console/
	// What a client can make the server hold before it is known
	// (docs/security.md): a header of at most MaxHeaderBytes read within
	// ReadHeaderTimeout, a body only once its signature or key is checked
	// (apiserver) read within ReadTimeout, and at most
	// api.max_connections connections. IdleTimeout is longer than the
	// SDKs' idle pools (aws-sdk-go-v2: 90 s), so a client never reuses a
	// connection the server is closing.
	ln = newLimitListener(ln, cfg.API.MaxConnections)
	apiServer := &lifecycle.Server{Listener: ln, Server: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}

	// The workers, as one group. Members stop one at a time in the reverse
	// order of Add, each waited for before the next (docs/design.md,
	// "Shutdown order"): HTTP first (in-flight calls end, each with its
	// record handed to the pipeline), then the Insights runner (its last
	// Insights go through the pipeline), the ingest drain, the janitor,
	// the final trail delivery (after the drain: it takes the last
	// records) and then the digests, and Lake; the stores close after
	// Run. Detection, delivery with the digests, retention and Insights
	// run only while this node holds their lease (holder.Run).
	group := lifecycle.Group{Logger: log}
	group.Add("lake", lk.Run)
	if cfg.Store.Postgres != "" {
		// Lake's writers: the feed into the event data stores (and their
		// retention), and the imports, each on one node.
		group.Add("lake feed", holder.Run(leaseLakeFeed, lk.RunFeed))
		group.Add("lake imports", holder.Run(leaseLakeImports, lk.RunImports))
	}
	if det != nil {
		// stops after the ingest drain; what the drain stored is matched
		// at the next start (the position is saved)
		group.Add("detect", runDetector(det, holder.Run(leaseDetect, det.Run)))
	}
	// Delivery reads the feed in batches of 20,000: a trail catching up
	// (created or started over a filled store) is paced like Lake and
	// Insights so that it leaves the cores to the lookups; a caught-up
	// trail reads partial batches and is never paused.
	deliverer := trail.NewDeliverer(trail.DeliveryConfig{Registry: trails, Feed: newPacedTrailFeed(store), Bucket: bks.trail,
		Interval: cfg.Delivery.Interval, Logger: log, Observer: digests, Registerer: reg})
	// One lease for delivery and every digest chain: the digests chain
	// the files this node's deliverer reports (Observer).
	group.Add("trail delivery", holder.Run(leaseDelivery, func(ctx context.Context) error {
		g := lifecycle.Group{Logger: log}
		g.Add("digests", digests.Run) // files delivered but not digested wait in the data dir
		g.Add("trail delivery", deliverer.Run)
		return g.Run(ctx)
	}))
	group.Add("retention", holder.Run(leaseRetention, retention.New(retention.Config{Store: store, Retention: cfg.Retention(), Logger: log}).Run))
	if st, ok := store.(*duckdb.Store); ok {
		group.Add("sealed recompression", recompressSealed(st, log))
	}
	group.Add("ingest", pipe.Run)
	// runs of `cairn insights --endpoint-url` stop before the drain: a run
	// stopped before its end stores nothing
	group.Add("insights runs", func(ctx context.Context) error { <-ctx.Done(); insJobs.Close(); return nil })
	if r := newInsightsRunner(cfg, f.dataDir, state, backgroundFeed{feed: store}, store, pipe, trails, log, reg, store); r != nil {
		group.Add("insights", holder.Run(leaseInsights, r.Run))
	}
	if gw != nil {
		group.Add("gateway", gw.Run)
	}
	group.Add("api", apiServer.Run)

	addr := "http://" + ln.Addr().String()
	if err := writeServerFile(f.dataDir, addr); err != nil {
		log.Warn("could not write the server file", "err", err)
	}
	defer os.Remove(filepath.Join(f.dataDir, serverFile))
	log.Info("cairn serving the CloudTrail API", "endpoint", addr, "data_dir", f.dataDir, "node", node,
		"retention_days", int(cfg.Retention()/(24*time.Hour)), "version", version)
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
		case <-stopped:
		}
	}()
	return group.Run(ctx)
}

// The leases of the work that must have one writer (docs/scale.md).
const (
	leaseDelivery  = "delivery" // trail delivery and every digest chain
	leaseInsights  = "insights" // live Insights detection
	leaseDetect    = "detect"   // live detection (Sigma rules, findings, webhooks)
	leaseRetention = "retention"
	// Lake on PostgreSQL: the feed into the event data stores and their
	// retention; the imports (StartImport on any node, run here).
	leaseLakeFeed    = "lake-feed"
	leaseLakeImports = "lake-imports"
)

// nodeID returns the node's name: the flag's, else the config's, else the
// host name.
func nodeID(flagID string, cfg *config.Config) (string, error) {
	switch {
	case flagID != "":
		return flagID, nil
	case cfg.Cluster.NodeID != "":
		return cfg.Cluster.NodeID, nil
	}
	host, err := os.Hostname()
	if err != nil || !config.ValidNodeID(host) {
		return "", fmt.Errorf("the host name %q cannot name this node: set --node-id or cluster.node_id", host)
	}
	return host, nil
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

// noteDroppedGeneratedKey says so when a --config leaves out the key cairn
// generated in the data dir on an earlier start without one: that key no
// longer signs (clients using it get InvalidClientTokenId).
func noteDroppedGeneratedKey(path, dataDir string, cfg *config.Config, stderr io.Writer) {
	if path == "" {
		return
	}
	genPath := filepath.Join(dataDir, config.GeneratedFile)
	if _, err := os.Stat(genPath); err != nil {
		return
	}
	_, gen, err := config.Generate(dataDir) // the file exists: read, not created
	if err != nil || gen.AccessKeyID == "" {
		return
	}
	for _, a := range cfg.Accounts {
		for _, u := range a.Users {
			for _, k := range u.AccessKeys {
				if k.ID == gen.AccessKeyID {
					return
				}
			}
		}
	}
	fmt.Fprintf(stderr, "cairn: --config %s does not hold the key cairn generated in this data dir (%s, account %s, in %s):\n"+
		"cairn: requests signed with it are refused now; copy its account from %s into the config to keep it.\n",
		path, gen.AccessKeyID, gen.AccountID, genPath, genPath)
}

// noteDataDirInGit says so when the data dir (keys, events) is about to be
// created inside a git work tree, where a commit could take it along.
func noteDataDirInGit(dataDir string, stderr io.Writer) {
	if _, err := os.Stat(dataDir); err == nil {
		return // created before: said then
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			fmt.Fprintf(stderr, "cairn: creating the data dir %s inside the git work tree %s; it holds access keys and events:\n"+
				"cairn: keep it out of commits (add %s/ to .gitignore) or choose another place with --data-dir.\n",
				abs, d, filepath.Base(abs))
			return
		}
		if filepath.Dir(d) == d {
			return
		}
	}
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

// eventStore is what serve needs of Event History's store: the port and
// the append-order feed's head (trail.Feed).
type eventStore interface {
	audit.Store
	LastSeq(ctx context.Context) (int64, error)
}

// serveCheckpointWAL is the write-ahead log a server's Event History lets
// grow before it checkpoints (the store's default is 16 MiB). Live ingest
// checkpoints by its transactions (CheckpointCommits, 100: 20 s of
// appends every 200 ms) long before; a bulk flow (`cairn import
// --endpoint-url`: appends of 10,000 records) reached 16 MiB every five
// appends, and the checkpoints were 3.1–3.7 of the server's 40–46 CPU-s
// for 1M records, 1.4 at 64 MiB (docs/store.md, "Imports through a
// server, session 16"). The cost is a longer replay after a crash: a
// server killed at 55 MB of log answered 2.9 s after its start (load 10),
// about 2 s more than 16 MiB's replay would take.
const serveCheckpointWAL = 64 << 20

// warmBudget bounds the time serve spends running the store's saved
// lookups through the API before it answers (apiserver.WarmLookups).
const warmBudget = time.Second

// openStore opens Event History's store: PostgreSQL when the config names
// one (store.postgres, migrated at open), else the embedded DuckDB store of
// the data dir. serving says the store will answer lookups (cairn serve):
// only then does a DuckDB store warm its cache from what the last server
// read, and save its own at Close (duckdb.Options.Cold), and does it seal
// the records of complete days its imports bring (duckdb.Options.Seal;
// docs/store.md, "Sealing during a server's import").
func openStore(ctx context.Context, cfg *config.Config, dataDir string, log *slog.Logger, serving bool) (eventStore, error) {
	return openStoreAs(ctx, cfg, dataDir, log, serving, false, serving)
}

// openImportStore is openStore for the offline import: the embedded store
// attached without its write-ahead log (duckdb.Options.Unlogged), which
// the import replaces with a checkpoint before it reports. A server never
// opens a store so. With seal, the import seals the records of complete
// days as it appends them (duckdb.Options.Seal; docs/store.md, "Sealing
// during an import").
func openImportStore(ctx context.Context, cfg *config.Config, dataDir string, log *slog.Logger, seal bool) (eventStore, error) {
	return openStoreAs(ctx, cfg, dataDir, log, false, true, seal)
}

func openStoreAs(ctx context.Context, cfg *config.Config, dataDir string, log *slog.Logger, serving, unlogged, seal bool) (eventStore, error) {
	if dsn := cfg.Store.Postgres; dsn != "" {
		st, err := postgres.Open(ctx, dsn, postgres.Options{Logger: log})
		if err != nil {
			// The cause names host and user, never the password (pgx's
			// errors do not carry it).
			return nil, fmt.Errorf("open the PostgreSQL store: %w", err)
		}
		return st, nil
	}
	path := filepath.Join(dataDir, storeFile)
	blocks := cfg.EventHistory.RecordBlockKiB << 10
	if blocks == 0 {
		blocks = -1 // one frame per record
	}
	// DuckDB's own memory default is 80% of the machine's memory (issue
	// 19: RSS at most 1 GB at 10M events; docs/store.md, "Memory of a
	// server"), set before the file is attached so that Open's replay and
	// warm start keep within it. An offline import lowers it again.
	opts := duckdb.Options{Logger: log, BlockBytes: blocks, Cold: !serving, MemoryLimit: cfg.EventHistory.MemoryLimit,
		Unlogged: unlogged, Seal: seal}
	if serving {
		opts.CheckpointWALBytes = serveCheckpointWAL
		// The ingest pipeline's writer reserves and appends its next
		// batch while the one before commits (docs/store.md, "Imports
		// through a server, session 18").
		opts.StagedAppends = true
		opts.Threads = cfg.EventHistory.Threads
	}
	st, err := duckdb.Open(path, opts)
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

// sharedStore is an Event History store that also keeps the state every
// node of a cluster shares (the PostgreSQL store's shared_state table).
type sharedStore interface {
	State() *postgres.State
}

// openState returns where the node keeps its named state (audit.StateStore,
// docs/scale.md): the PostgreSQL store's shared table when the store is
// PostgreSQL, so that every node on the database sees the same trails,
// NextToken key and sessions; else files in the data dir, as always.
func openState(store eventStore, dataDir string) audit.StateStore {
	if s, ok := store.(sharedStore); ok {
		return s.State()
	}
	return statefile.Open(dataDir)
}

// shared reports whether st is shared with other nodes (not the data dir).
func shared(st audit.StateStore) bool {
	_, files := st.(*statefile.Dir)
	return !files
}

// openTrails opens the trails registry: the data dir's trails.json with
// files, or the registry every node shares.
func openTrails(ctx context.Context, st audit.StateStore, dataDir string, log *slog.Logger) (*trail.Registry, error) {
	if !shared(st) {
		return trail.OpenRegistry(dataDir)
	}
	return trail.OpenSharedRegistry(ctx, trail.SharedConfig{State: st, Logger: log})
}

// openKeyring opens the digest signing keys: the data dir's file, or the
// keys every node shares.
func openKeyring(ctx context.Context, st audit.StateStore, dataDir string, rotation time.Duration) (*trail.Keyring, error) {
	if !shared(st) {
		return trail.OpenKeyring(dataDir, rotation)
	}
	return trail.OpenSharedKeyring(ctx, st, rotation)
}

// loadOrCreateKey returns the NextToken signing key (tokenKeyFile),
// creating it once. Nodes sharing st share it, so a NextToken from one
// pages on another: the first to create it wins, the others read it.
func loadOrCreateKey(ctx context.Context, st audit.StateStore) ([]byte, error) {
	for range 3 {
		b, v, err := st.Get(ctx, tokenKeyFile)
		if err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
		if len(b) >= 32 {
			return b, nil
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		_, err = st.Put(ctx, tokenKeyFile, key, v)
		if errors.Is(err, audit.ErrStateConflict) {
			continue // another node created it: read theirs
		}
		if err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
		return key, nil
	}
	return nil, errors.New("token key: changed by others while being created")
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
// import, query and insights send their records and signed requests to
// it, so the server file is believed only as far as a server of this user
// could have written it: a file of this user that no one else may write,
// naming a live process and an http endpoint on this machine (serve
// writes its listener's address). Anything else (a data dir copied from
// elsewhere or writable by others, an endpoint on another host) is no
// server's.
func serverHolding(dataDir string) string {
	f, err := os.Open(filepath.Join(dataDir, serverFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 || !ownedByUs(fi) {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return ""
	}
	var si serverInfo
	if json.Unmarshal(b, &si) != nil || si.PID <= 0 || !localEndpoint(si.Endpoint) {
		return ""
	}
	if p, err := os.FindProcess(si.PID); err != nil || p.Signal(syscall0) != nil {
		return ""
	}
	return si.Endpoint
}

// localEndpoint reports whether endpoint is http://IP:PORT with IP an
// address of this machine (loopback, unspecified or an interface's), as
// serve writes it.
func localEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Port() == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// maxHeaderBytes bounds a request's header (net/http allows 4 KiB more).
// The SDKs send 1-3 KiB, session tokens included.
const maxHeaderBytes = 16 << 10

// authenticator verifies SigV4 against the configured keys.
type authenticator struct {
	principals configPrincipals
	v          *sigv4.Verifier
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
	p, ok := a.principals.Principal(res.AccessKeyID)
	if !ok {
		return apiserver.Caller{}, &awsjson.Error{Code: "UnrecognizedClientException", Status: http.StatusForbidden,
			Message: "The security token included in the request is invalid."}
	}
	p.Region = res.Region
	return apiserver.Caller{Principal: p, Service: res.Service}, nil
}

// configPrincipals are the config file's users, for both edges (the API's
// authenticator and the gateway): the principal of each access key,
// without its secret.
type configPrincipals struct{ cfg *config.Config }

// Principal returns the principal of a configured access key.
func (c configPrincipals) Principal(accessKeyID string) (audit.Principal, bool) {
	p, ok := c.cfg.Principal(accessKeyID)
	if !ok {
		return audit.Principal{}, false
	}
	return audit.Principal{AccountID: p.AccountID, UserName: p.UserName, ARN: p.ARN, PrincipalID: p.PrincipalID,
		AccessKeyID: accessKeyID, Responder: p.Responder}, true
}

// lakeCluster is what a Lake on PostgreSQL shares with the other nodes:
// the shared state (its registry) and this node's name. Its zero value is
// a Lake of the data dir alone (cairn query --data-dir).
type lakeCluster struct {
	state audit.StateStore
	node  string
}

// openLake opens CloudTrail Lake's database: the data dir's DuckDB file,
// or, with store.postgres, the PostgreSQL engine in that database, with
// the registry in the shared state and queries every node reads.
// StartImport reads s3:// sources from bks.
// reg receives Lake's metrics (nil: none); Lake's Run takes new events
// from feed (nil: none).
func openLake(ctx context.Context, dataDir string, cfg *config.Config, log *slog.Logger, bks buckets, reg prometheus.Registerer, feed lake.Feed, cl lakeCluster) (*lake.Lake, error) {
	var org *audit.Organization
	if o := cfg.Organization; o != nil {
		org = &audit.Organization{ID: o.ID, ManagementAccount: o.ManagementAccount, Members: o.MemberAccounts}
	}
	threads := cfg.Lake.Threads
	if threads == 0 { // one per core
		threads = runtime.NumCPU()
	}
	var (
		eng     engine.Engine
		queries lake.SharedQueries
		err     error
	)
	sharedLake := cfg.Store.Postgres != ""
	switch {
	case sharedLake && cl.state == nil:
		return nil, errors.New("CloudTrail Lake is in PostgreSQL with this config: reach it through a node (--endpoint-url)")
	case sharedLake:
		// Every node's Lake: the events, the registry and the queries in
		// the database (docs/lake.md, "Lake on PostgreSQL").
		pg, perr := lakepostgres.Open(ctx, cfg.Store.Postgres, lakepostgres.Options{})
		if perr != nil {
			return nil, fmt.Errorf("open CloudTrail Lake's PostgreSQL engine: %w", perr)
		}
		eng, queries = pg, pg
	default:
		eng, err = lakeduckdb.Open(filepath.Join(dataDir, lake.DBFile), lakeduckdb.Options{MemoryLimit: cfg.Lake.MemoryLimit, Threads: threads})
	}
	if err != nil {
		if held := serverHolding(dataDir); held != "" {
			return nil, fmt.Errorf("the data dir %s is in use by the cairn server at %s", dataDir, held)
		}
		return nil, err
	}
	var state audit.StateStore
	if sharedLake {
		state = cl.state
	}
	lk, err := lake.Open(dataDir, lake.Options{Engine: eng, State: state, Shared: sharedLake, LoadAppenders: loadAppendersFromEnv(), Queries: queries, Node: cl.node,
		Organization: org, Feed: feed, IngestInterval: cfg.Lake.IngestInterval,
		QueryTimeout: cfg.Lake.QueryTimeout, MaxResultBytes: cfg.Lake.MaxResultMB << 20,
		MaxConcurrentQueries: cfg.Lake.MaxConcurrentQueries, MaxRunningQueries: cfg.Lake.MaxRunningQueries,
		MaxRunningQueriesPerAccount: cfg.Lake.MaxRunningQueriesPerAccount,
		MaxHeldResults:              cfg.Lake.MaxHeldResults, MaxHeldResultBytes: int64(cfg.Lake.MaxHeldResultsMB) << 20,
		CheckpointCommits: cfg.Lake.CheckpointCommits, CheckpointWALBytes: int64(cfg.Lake.CheckpointWALMB) << 20,
		MaxStores: cfg.Lake.MaxEventDataStores, ImportRoots: cfg.Lake.ImportRoots, Logger: log, Registerer: reg,
		Buckets:    func(name string) (lake.Bucket, bool) { b, ok := bks[name]; return b, ok },
		LoadBegins: new(loadGC).lower})
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

// sealedStatser is an Event History store with a sealed tier (the
// embedded DuckDB store).
type sealedStatser interface{ SealedStats() duckdb.SealedStats }

// sealedCollector is /metrics' figures of Event History's sealed tier
// (docs/store.md, "The sealed tier"): what it holds and what its segment
// files read and write, from one SealedStats a scrape.
type sealedCollector struct{ st sealedStatser }

var sealedMetrics = []struct {
	desc    *prometheus.Desc
	counter bool
	value   func(s duckdb.SealedStats) int64
}{
	{prometheus.NewDesc("cairn_store_sealed_blocks", "Blocks in Event History's sealed tier.", nil, nil), false, func(s duckdb.SealedStats) int64 { return s.Blocks }},
	{prometheus.NewDesc("cairn_store_sealed_records", "Records in Event History's sealed tier.", nil, nil), false, func(s duckdb.SealedStats) int64 { return s.Records }},
	{prometheus.NewDesc("cairn_store_sealed_segment_bytes", "Bytes of the sealed tier's segment files.", nil, nil), false, func(s duckdb.SealedStats) int64 { return s.SegmentBytes }},
	{prometheus.NewDesc("cairn_store_sealed_live_bytes", "Bytes of the segment files that blocks reference (the rest is dead until rewritten).", nil, nil), false, func(s duckdb.SealedStats) int64 { return s.LiveBytes }},
	{prometheus.NewDesc("cairn_store_sealed_pending_blocks", "Sealed blocks an offline import wrote at its faster zstd level that the server has yet to compress again.", nil, nil), false, func(s duckdb.SealedStats) int64 { return s.Pending }},
	{prometheus.NewDesc("cairn_store_sealed_reads_total", "Sealed blocks read from the segment files since the server started.", nil, nil), true, func(s duckdb.SealedStats) int64 { return s.Reads }},
	{prometheus.NewDesc("cairn_store_sealed_read_bytes_total", "Bytes of sealed blocks read from the segment files since the server started.", nil, nil), true, func(s duckdb.SealedStats) int64 { return s.BytesRead }},
	{prometheus.NewDesc("cairn_store_sealed_read_errors_total", "Sealed block reads that failed (a damaged or missing block among them).", nil, nil), true, func(s duckdb.SealedStats) int64 { return s.ReadErrors }},
	{prometheus.NewDesc("cairn_store_sealed_writes_total", "Writes of sealed blocks to the segment files since the server started (retention's rewrites, the recompression of an import's blocks).", nil, nil), true, func(s duckdb.SealedStats) int64 { return s.Writes }},
}

func (c sealedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range sealedMetrics {
		ch <- m.desc
	}
}

func (c sealedCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.st.SealedStats()
	for _, m := range sealedMetrics {
		kind := prometheus.GaugeValue
		if m.counter {
			kind = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(m.desc, kind, float64(m.value(st)))
	}
}

// recompressSealed encodes again, in the background, the sealed blocks an
// offline import or the server's own appends wrote at the faster level
// (duckdb.Store.RecompressSealed; docs/store.md, "Sealing at import speed,
// compressed later" and "Sealing during a server's import"), in batches,
// sleeping after each three times what it took: at most about a quarter
// of a core, beside lookups and ingest. It waits while the server's
// appends seal (an import through it: they would share a segment) and
// while none is pending. An error is logged and ends it (the blocks stay
// readable as they are, and the next start tries again), never the
// server.
func recompressSealed(st *duckdb.Store, log *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var (
			t0          time.Time
			done, total int
		)
		for {
			wait := recompressIdle
			switch left := st.PendingSealed(); {
			case left == 0:
				if total > 0 {
					log.Info("recompressed the sealed blocks", "blocks", done, "took", time.Since(t0).Round(time.Millisecond))
					done, total = 0, 0
				}
			case time.Since(st.LastSealed()) < recompressAfterSeal:
				// An import through the server is sealing.
			default:
				if total == 0 {
					total, t0 = left, time.Now()
					log.Info("recompressing sealed blocks", "blocks", total)
				}
				t1 := time.Now()
				n, left2, err := st.RecompressSealed(ctx, 16)
				if err != nil {
					if ctx.Err() == nil {
						log.Warn("recompressing sealed blocks stopped", "done", done, "err", err)
					}
					return nil
				}
				done += n
				if left2 < left {
					wait = 3 * time.Since(t1)
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// recompressIdle is how often recompressSealed looks for blocks when none
// is pending or the server's appends seal; recompressAfterSeal how long
// after their last seal it starts.
const (
	recompressIdle      = time.Second
	recompressAfterSeal = 2 * time.Second
)
