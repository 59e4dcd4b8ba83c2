package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/gateway"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/testaddr"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestGatewayRecordsIntoEventHistory runs serve with a gateway in front of
// moto_server: S3 calls through it are management events in LookupEvents
// within a second, and data events (PutObject) are not.
func TestGatewayRecordsIntoEventHistory(t *testing.T) {
	moto := mototest.Start(t)
	gwAddr := testaddr.Free(t)
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90)+fmt.Sprintf("gateway:\n  listen: %s\n  upstreams:\n    default: %s\n", gwAddr, moto), "")
	ctx := context.Background()
	cli := newS3("http://"+gwAddr, "AKIAALICE00000000001", "alice-secret-key", 1)
	testwait.UntilNil(t, "CreateBucket through the gateway", func() error { // the gateway listens once serve has started
		_, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("gw-bucket")})
		return err
	})
	if _, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gw-bucket"), Key: aws.String("k"), Body: bytes.NewReader([]byte("hello"))}); err != nil {
		t.Fatal(err)
	}
	ct := alice(ts)
	var evs []types.Event
	testwait.Until(t, "the gateway's CreateBucket in LookupEvents", func() bool {
		evs = lookupAll(t, ct, &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventSource, "s3.amazonaws.com")})
		return len(evs) > 0
	})
	if len(evs) != 1 || aws.ToString(evs[0].EventName) != "CreateBucket" || aws.ToString(evs[0].Username) != "alice" {
		t.Fatalf("LookupEvents: %d events %+v; want alice's CreateBucket alone", len(evs), evs)
	}
	if len(evs[0].Resources) == 0 || aws.ToString(evs[0].Resources[0].ResourceType) != "AWS::S3::Bucket" {
		t.Errorf("resources: %+v", evs[0].Resources)
	}
	// bob's account sees none of alice's calls.
	if got := lookupAll(t, ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1"),
		&cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventSource, "s3.amazonaws.com")}); len(got) != 0 {
		t.Errorf("bob sees %d of alice's events", len(got))
	}
}

// TestGatewayWiring checks what newGateway and the API's authenticator map from the config file onto
// the gateway: each configured key's principal (its IAM-user identity, no
// secret), no principal for an unknown key, and defaults that agree where
// the config file and the gateway each keep one.
func TestGatewayWiring(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(twoAccounts, 90)))
	if err != nil {
		t.Fatal(err)
	}
	ps := configPrincipals{cfg}
	for _, key := range []string{"AKIAALICE00000000001", "AKIABOB0000000000001"} {
		cp, _ := cfg.Principal(key)
		got, ok := ps.Principal(key)
		want := audit.Principal{AccountID: cp.AccountID, UserName: cp.UserName, ARN: cp.ARN, PrincipalID: cp.PrincipalID, AccessKeyID: key}
		if !ok || got != want || got.PrincipalID == "" {
			t.Errorf("Principal(%s) = %+v, %v; want %+v, true", key, got, ok, want)
		}
	}
	if p, ok := ps.Principal("AKIAUNKNOWN000000000"); ok {
		t.Errorf("Principal(unknown key) = %+v, true; want false", p)
	}
	if config.DefaultMaxSessions != gateway.DefaultMaxSessions {
		t.Errorf("gateway.max_sessions default %d, the gateway's own %d", config.DefaultMaxSessions, gateway.DefaultMaxSessions)
	}
	if config.DefaultMaxBufferedBodyMB<<20 != gateway.DefaultMaxBufferedBody {
		t.Errorf("gateway.max_buffered_body_mb default %d MiB, the gateway's own %d bytes", config.DefaultMaxBufferedBodyMB, gateway.DefaultMaxBufferedBody)
	}
}
