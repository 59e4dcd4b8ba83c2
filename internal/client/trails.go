package client

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
)

// TrailLocation is where a trail delivers: what log-file validation needs
// to find its digests.
type TrailLocation struct {
	Bucket, Prefix      string
	IsOrganizationTrail bool
}

// TrailLocation returns the bucket and prefix of the trail arn
// (DescribeTrails), or an error naming the trail when the server has no
// such trail for the caller.
func (c *Client) TrailLocation(ctx context.Context, arn string) (TrailLocation, error) {
	out, err := c.CloudTrail.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{})
	if err != nil {
		return TrailLocation{}, err
	}
	for _, t := range out.TrailList {
		if aws.ToString(t.TrailARN) == arn {
			return TrailLocation{Bucket: aws.ToString(t.S3BucketName), Prefix: aws.ToString(t.S3KeyPrefix),
				IsOrganizationTrail: aws.ToBool(t.IsOrganizationTrail)}, nil
		}
	}
	return TrailLocation{}, fmt.Errorf("A trail could not be found for %s", arn)
}

// PublicKey is a digest-signing public key: its fingerprint and its
// DER-encoded PKCS#1 value.
type PublicKey struct {
	Fingerprint string
	DER         []byte
}

// PublicKeys returns the public keys of the client's region valid between
// start and end (ListPublicKeys).
func (c *Client) PublicKeys(ctx context.Context, start, end time.Time) ([]PublicKey, error) {
	out, err := c.CloudTrail.ListPublicKeys(ctx, &cloudtrail.ListPublicKeysInput{StartTime: &start, EndTime: &end})
	if err != nil {
		return nil, err
	}
	var keys []PublicKey
	for _, k := range out.PublicKeyList {
		keys = append(keys, PublicKey{Fingerprint: aws.ToString(k.Fingerprint), DER: k.Value})
	}
	return keys, nil
}
