// Package client is everything that talks to a running cairn: the one
// place that builds a CloudTrail client from an endpoint, a region and the
// AWS credentials (New), the ImportRecords sender (Importer, an
// importer.Sink), the Event History read through LookupEvents (History, a
// feed for insights), and CloudTrail Lake queries and imports run to their
// end by polling (Query, Import).
//
// It is an edge (docs/design.md): it speaks AWS's protocols through
// aws-sdk-go-v2 and imports no other edge; cmd/cairn holds the flags and
// wires it to the features.
package client

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/awsclient"
)

// DefaultRegion signs requests when neither Config nor the AWS environment
// names a region.
const DefaultRegion = "us-east-1"

// Config says which cairn to talk to and as whom. Its zero value talks to
// no server (New fails) but still loads the AWS environment.
type Config struct {
	// Endpoint is the server's URL (http://localhost:8080). Required by
	// New.
	Endpoint string
	// Region signs the requests. Default: the AWS environment's
	// (AWS_REGION, the profile), else FallbackRegion.
	Region string
	// FallbackRegion is the region when neither Region nor the AWS
	// environment names one (default DefaultRegion).
	FallbackRegion string
	// Profile is the shared-config profile to read (default: AWS_PROFILE,
	// else "default").
	Profile string
	// Credentials sign the requests (default: the SDK's default chain:
	// environment variables, shared files, ...).
	Credentials aws.CredentialsProvider
	// HTTPClient sends the SDK's requests (default: the SDK's), always
	// wrapped by awsclient.HTTPClient.
	HTTPClient aws.HTTPClient
}

// Client talks to one running cairn.
type Client struct {
	// CloudTrail is the SDK client for the server's CloudTrail API.
	CloudTrail *cloudtrail.Client
	// Region is the region the requests are signed for.
	Region string
	// Credentials sign the requests.
	Credentials aws.CredentialsProvider
	endpoint    string
}

// LoadAWS loads the AWS environment the way the AWS CLI does (credentials,
// region, profile), with cfg's Profile and Credentials applied. Its Region
// is the environment's, possibly empty: see ResolveRegion.
func LoadAWS(ctx context.Context, cfg Config) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws credentials: %w", err)
	}
	return awsCfg, nil
}

// ResolveRegion returns the first of regions that is not empty, else
// DefaultRegion. Callers list them by precedence: a flag's, the AWS
// environment's, a fallback.
func ResolveRegion(regions ...string) string {
	for _, r := range regions {
		if r != "" {
			return r
		}
	}
	return DefaultRegion
}

// New returns a Client for the server at cfg.Endpoint.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("client: no endpoint")
	}
	awsCfg, err := LoadAWS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	awsCfg.Region = ResolveRegion(cfg.Region, awsCfg.Region, cfg.FallbackRegion)
	ct := cloudtrail.NewFromConfig(awsCfg, func(o *cloudtrail.Options) {
		o.Region = awsCfg.Region
		o.BaseEndpoint = aws.String(cfg.Endpoint)
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
		o.HTTPClient = awsclient.HTTPClient(o.HTTPClient)
	})
	return &Client{CloudTrail: ct, Region: awsCfg.Region, Credentials: awsCfg.Credentials, endpoint: cfg.Endpoint}, nil
}

// Importer returns an Importer sending records to the server as the
// client's credentials, signed for its region.
func (c *Client) Importer() *Importer {
	return NewImporter(ImporterConfig{Endpoint: c.endpoint, Region: c.Region, Credentials: c.Credentials})
}

// BulkImporter is Importer for an import of many calls (`cairn import
// --endpoint-url`): a throttled call keeps trying for up to wait
// (ImporterConfig.ThrottledWait).
func (c *Client) BulkImporter(wait time.Duration) *Importer {
	return NewImporter(ImporterConfig{Endpoint: c.endpoint, Region: c.Region, Credentials: c.Credentials, ThrottledWait: wait})
}
