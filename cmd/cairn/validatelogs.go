package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/bucket/s3"
	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/store/postgres"
	"github.com/cairn-audit/cairn/internal/trail"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// validateLogsCmd is `aws cloudtrail validate-logs` for cairn: the same
// arguments, output and exit status (0 all valid, 1 something invalid, 255
// the validation could not run). Public keys and the trail come from a
// running cairn (--endpoint-url: ListPublicKeys, DescribeTrails) or from
// its data dir (--data-dir), or, when the config (--config, else the data
// dir's) keeps the state in PostgreSQL (store.postgres), from the state
// every node shares there; the files from an S3 API (--s3-endpoint-url,
// default $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL) or a local folder
// holding the bucket (--local-dir).
func validateLogsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate-logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	arn := fs.String("trail-arn", "", "ARN of the trail to validate (required)")
	startS := fs.String("start-time", "", "validate files delivered on or after this UTC time, e.g. 2026-01-08T05:21:42Z (required)")
	endS := fs.String("end-time", "", "validate files delivered on or before this UTC time (default: now)")
	s3Bucket := fs.String("s3-bucket", "", "bucket of the digests (default: the trail's, from DescribeTrails)")
	s3Prefix := fs.String("s3-prefix", "", "key prefix of the digests (default: the trail's; honoured without --s3-bucket too)")
	account := fs.String("account-id", "", "account whose files to validate (organization trails)")
	orgID := fs.String("organization-id", "", "organization ID of an organization trail (cairn has no Organizations API)")
	verbose := fs.Bool("verbose", false, "print every valid file too")
	endpoint := fs.String("endpoint-url", "", "cairn's CloudTrail API (ListPublicKeys, DescribeTrails); AWS credential variables apply")
	region := fs.String("region", "", "the region whose digests to validate (default: from the AWS environment, else the trail's)")
	dataDir := fs.String("data-dir", "", "read keys and trails from this cairn data dir instead of --endpoint-url (from PostgreSQL when the config names store.postgres); its buckets (cairn-logs, the config's) are read without AWS credentials (default "+defaultDataDir+")")
	cfgPath := fs.String("config", "", "cairn's config file (YAML), naming its buckets (default: the data dir's generated config)")
	s3Endpoint := fs.String("s3-endpoint-url", "", "S3 API holding the bucket, for a bucket that is not one of cairn's (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)")
	localDir := fs.String("local-dir", "", "read the bucket from this folder (cairn's local bucket layout) instead of S3")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn validate-logs --trail-arn ARN --start-time TIME [flags]\n\n"+
			"Validates the log files a cairn trail delivered against its signed digest files, as\n"+
			"`aws cloudtrail validate-logs` does (same output; exit 0 all valid, 1 something invalid,\n"+
			"2 bad command line, 255 could not validate). cairn's own buckets (cairn-logs and the\n"+
			"config's) are found from the data dir and config, without AWS credentials.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	unlisted := fs.Bool("report-unlisted", false, "also report log files in the trail's folder that no digest names, e.g. added ones (not in the AWS CLI)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "\n%v\n", err)
		return 255
	}
	if *arn == "" || *startS == "" {
		fmt.Fprintln(stderr, "cairn validate-logs: the following arguments are required: --trail-arn, --start-time")
		return 2
	}
	start, err := parseCLITime(*startS)
	if err != nil {
		return fail(err)
	}
	end := time.Now().UTC()
	if *endS != "" {
		if end, err = parseCLITime(*endS); err != nil {
			return fail(err)
		}
	}
	if !chain.ARNPattern.MatchString(*arn) {
		return fail(fmt.Errorf("Invalid trail ARN provided: %s", *arn))
	}
	ownDir := *dataDir
	if ownDir == "" {
		ownDir = defaultDataDir
	}
	if *endpoint == "" {
		*dataDir = ownDir
	}

	awsCfg, err := client.LoadAWS(ctx, client.Config{})
	if err != nil {
		return fail(err)
	}
	srcRegion := client.ResolveRegion(*region, awsCfg.Region, strings.Split(*arn, ":")[3])

	var src keySource
	if *endpoint != "" {
		c, err := client.New(ctx, client.Config{Endpoint: *endpoint, Region: srcRegion})
		if err != nil {
			return fail(err)
		}
		src = apiKeys{c}
	} else {
		dsn, err := sharedStoreOf(*dataDir, *cfgPath)
		if err != nil {
			return fail(err)
		}
		if dsn == "" {
			src = dataDirKeys{dir: *dataDir, region: srcRegion}
		} else {
			shared, err := openSharedKeys(ctx, dsn, srcRegion)
			if err != nil {
				return fail(fmt.Errorf("%w (or validate through any node: --endpoint-url)", err))
			}
			defer shared.close()
			src = shared
		}
	}

	v := &chain.Validation{TrailARN: *arn, Start: start, End: end, Bucket: *s3Bucket, Prefix: *s3Prefix,
		Account: *account, SourceRegion: srcRegion, OrganizationID: *orgID, Verbose: *verbose,
		Stdout: stdout, Stderr: stderr, PublicKeys: src.publicKeys, ReportUnlisted: *unlisted}
	if v.Bucket == "" {
		// The bucket (and, unless --s3-prefix names one, the prefix)
		// of the trail, as the AWS CLI documents it. Its code (awscli
		// customizations/cloudtrail/validation.py) takes the trail's
		// prefix even when --s3-prefix is given without --s3-bucket,
		// silently validating another folder than the one asked for;
		// cairn honours the flag.
		t, err := src.trail(ctx, *arn)
		if err != nil {
			return fail(err)
		}
		v.Bucket = t.S3BucketName
		if *s3Prefix == "" {
			v.Prefix = t.S3KeyPrefix
		}
		if t.IsOrganizationTrail {
			if *account == "" {
				return fail(errors.New("Missing required parameter for organization trail: '--account-id'"))
			}
			if v.OrganizationID == "" {
				v.OrganizationID = t.OrganizationID
			}
			if v.OrganizationID == "" {
				return fail(errors.New("Missing required parameter for organization trail with --endpoint-url: '--organization-id'"))
			}
		}
	}

	if *localDir != "" {
		dir := *localDir
		v.Objects = trail.BucketObjects(func(name string) (trail.Bucket, bool) {
			b, err := local.New(name, dir)
			return b, err == nil
		})
	} else {
		ep := *s3Endpoint
		var own buckets
		if ep == "" {
			// cairn's own buckets, from its data dir and config:
			// nothing to ask of AWS for them.
			if own, err = ownBuckets(ownDir, *cfgPath); err != nil {
				return fail(err)
			}
		}
		for _, env := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
			if ep == "" {
				ep = os.Getenv(env)
			}
		}
		remote := &lazyS3{ctx: ctx, aws: awsCfg.Credentials, region: client.ResolveRegion(awsCfg.Region), endpoint: ep, stderr: stderr}
		v.Objects = trail.BucketObjects(func(name string) (trail.Bucket, bool) {
			if b, ok := own.trail(name); ok {
				return b, true
			}
			if ep == "" && own != nil {
				// Not one of cairn's, and no S3 API named: AWS's
				// S3 is not where a cairn trail delivers.
				hint := ""
				if *cfgPath == "" {
					hint = "; --config names the config's buckets"
				}
				fmt.Fprintf(stderr, "cairn: the bucket %s is not one of cairn's (%s)%s; for another S3 API, name it with --s3-endpoint-url\n",
					name, strings.Join(own.names(), ", "), hint)
				return nil, false
			}
			return remote.bucket(name)
		})
	}
	ok, err := v.Run(ctx)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return 1
	}
	return 0
}

// ownBuckets returns the buckets of the cairn whose data dir is dir: the
// built-in cairn-logs and those of the config at cfgPath, else of the
// data dir's generated config; nil when dir is not a cairn data dir. It
// creates nothing (no generated account, no bucket folder).
func ownBuckets(dir, cfgPath string) (buckets, error) {
	cfg := &config.Config{}
	switch _, err := os.Stat(filepath.Join(dir, config.GeneratedFile)); {
	case cfgPath != "":
		if cfg, err = config.Load(cfgPath); err != nil {
			return nil, err
		}
	case err == nil:
		if cfg, _, err = config.Generate(dir); err != nil {
			return nil, err
		}
	default:
		if _, err := os.Stat(filepath.Join(dir, storeFile)); err != nil {
			return nil, nil
		}
	}
	return bucketsOf(cfg, dir, false)
}

func dirExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

func (b buckets) names() []string {
	return slices.Sorted(maps.Keys(b))
}

// lazyS3 opens buckets of an S3 API with the AWS credentials, retrieved
// once and only when a bucket is asked for (no credential lookup, and no
// EC2 metadata call, when only cairn's own buckets are read).
type lazyS3 struct {
	ctx              context.Context
	aws              aws.CredentialsProvider
	region, endpoint string
	stderr           io.Writer

	once  sync.Once
	creds aws.Credentials
	err   error
}

func (l *lazyS3) bucket(name string) (trail.Bucket, bool) {
	l.once.Do(func() {
		if l.aws == nil {
			l.err = errors.New("no AWS credentials")
		} else {
			l.creds, l.err = l.aws.Retrieve(l.ctx)
		}
		if l.err != nil {
			fmt.Fprintf(l.stderr, "cairn: AWS credentials for the S3 API: %v\n", l.err)
		}
	})
	if l.err != nil {
		return nil, false
	}
	return s3.New(name, s3.Options{Endpoint: l.endpoint, Region: l.region, AccessKeyID: l.creds.AccessKeyID,
		SecretAccessKey: l.creds.SecretAccessKey, PathStyle: l.endpoint != ""}), true
}

// parseCLITime accepts the times the AWS CLI's date parser is given in
// practice: ISO 8601 with or without zone or seconds, a date, epoch seconds.
func parseCLITime(s string) (time.Time, error) {
	for _, f := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z", "2006-01-02T15:04:05", "2006-01-02T15:04",
		"2006-01-02 15:04:05", "2006-01-02", "20060102T150405Z"} {
		if t, err := time.Parse(f, s); err == nil {
			return t.UTC(), nil
		}
	}
	var sec int64
	if _, err := fmt.Sscanf(s, "%d", &sec); err == nil && fmt.Sprint(sec) == s {
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("Unable to parse date value: %s", s)
}

// keySource gives the validation the trail and the public keys.
type keySource interface {
	trail(ctx context.Context, arn string) (trail.Trail, error)
	publicKeys(ctx context.Context, start, end time.Time) ([]chain.PublicKey, error)
}

// apiKeys reads a running cairn (DescribeTrails, ListPublicKeys).
type apiKeys struct{ c *client.Client }

func (a apiKeys) trail(ctx context.Context, arn string) (trail.Trail, error) {
	l, err := a.c.TrailLocation(ctx, arn)
	if err != nil {
		return trail.Trail{}, err
	}
	return trail.Trail{S3BucketName: l.Bucket, S3KeyPrefix: l.Prefix, IsOrganizationTrail: l.IsOrganizationTrail}, nil
}

func (a apiKeys) publicKeys(ctx context.Context, start, end time.Time) ([]chain.PublicKey, error) {
	ks, err := a.c.PublicKeys(ctx, start, end)
	if err != nil {
		return nil, err
	}
	var keys []chain.PublicKey
	for _, k := range ks {
		keys = append(keys, chain.PublicKey{Fingerprint: k.Fingerprint, DER: k.DER})
	}
	return keys, nil
}

// dataDirKeys reads a cairn data dir: the keyring and trails.json.
type dataDirKeys struct{ dir, region string }

func (d dataDirKeys) trail(_ context.Context, arn string) (trail.Trail, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, "trails.json"))
	if err != nil {
		return trail.Trail{}, err
	}
	var list []trail.Trail
	if err := json.Unmarshal(b, &list); err != nil {
		return trail.Trail{}, err
	}
	for _, t := range list {
		if t.ARN() == arn {
			return t, nil
		}
	}
	return trail.Trail{}, fmt.Errorf("A trail could not be found for %s", arn)
}

func (d dataDirKeys) publicKeys(_ context.Context, start, end time.Time) ([]chain.PublicKey, error) {
	// Read only: a server may hold the data dir and save keys meanwhile.
	public, err := trail.ReadPublicKeys(d.dir, d.region, start, end)
	if err != nil {
		return nil, err
	}
	var keys []chain.PublicKey
	for _, k := range public {
		keys = append(keys, chain.PublicKey{Fingerprint: k.Fingerprint, DER: k.DER})
	}
	return keys, nil
}

// sharedStoreOf returns the PostgreSQL connection string of the config at
// cfgPath, else of dir's generated config: "" when the config keeps
// cairn's state in the data dir (no store.postgres) or there is none.
func sharedStoreOf(dir, cfgPath string) (string, error) {
	var cfg *config.Config
	switch _, err := os.Stat(filepath.Join(dir, config.GeneratedFile)); {
	case cfgPath != "":
		if cfg, err = config.Load(cfgPath); err != nil {
			return "", err
		}
	case err == nil:
		if cfg, _, err = config.Generate(dir); err != nil {
			return "", err
		}
	default:
		return "", nil
	}
	return cfg.Store.Postgres, nil
}

// sharedKeys reads the trails and the public keys from the state the
// nodes of a cluster share in PostgreSQL (the trails' registry and the
// digest keyring). It only reads them; opening the store migrates its
// schema, as every node does at start.
type sharedKeys struct {
	st     *postgres.Store
	region string
	trails *trail.Registry
	keys   *trail.Keyring
}

func openSharedKeys(ctx context.Context, dsn, region string) (*sharedKeys, error) {
	st, err := postgres.Open(ctx, dsn, postgres.Options{Logger: slog.New(slog.DiscardHandler), MaxConns: 2})
	if err != nil {
		return nil, fmt.Errorf("open the PostgreSQL store of the config's store.postgres: %w", err)
	}
	reg, err := trail.OpenSharedRegistry(ctx, trail.SharedConfig{State: st.State(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		st.Close()
		return nil, err
	}
	kr, err := trail.OpenSharedKeyring(ctx, st.State(), 0)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &sharedKeys{st: st, region: region, trails: reg, keys: kr}, nil
}

func (s *sharedKeys) close() { s.st.Close() }

func (s *sharedKeys) trail(_ context.Context, arn string) (trail.Trail, error) {
	for _, t := range s.trails.Trails() {
		if t.ARN() == arn {
			return t, nil
		}
	}
	return trail.Trail{}, fmt.Errorf("A trail could not be found for %s", arn)
}

func (s *sharedKeys) publicKeys(_ context.Context, start, end time.Time) ([]chain.PublicKey, error) {
	var keys []chain.PublicKey
	for _, k := range s.keys.Public(s.region, start, end) {
		keys = append(keys, chain.PublicKey{Fingerprint: k.Fingerprint, DER: k.DER})
	}
	return keys, nil
}
