package config

import (
	"net/url"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"
)

// Bucket is a place trails deliver to: an S3 bucket on an S3-compatible
// endpoint, or a local folder with the same key layout.
//
//	buckets:
//	  - name: audit-logs
//	    s3: {endpoint: "http://127.0.0.1:5000", region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
//	  - name: local-logs
//	    local_dir: ./trail-logs
type Bucket struct {
	Name     string    `yaml:"name"`
	S3       *S3Bucket `yaml:"s3"`
	LocalDir string    `yaml:"local_dir"`
}

// S3Bucket locates a bucket on an S3 API.
type S3Bucket struct {
	Endpoint        string `yaml:"endpoint"`
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	PathStyle       bool   `yaml:"path_style"`
}

// Delivery paces trail delivery.
type Delivery struct {
	// Interval is how often trails deliver log files (AWS: about 5 minutes).
	Interval time.Duration `yaml:"interval"`
	// DigestInterval is how often digest files are written (AWS: hourly).
	DigestInterval time.Duration `yaml:"digest_interval"`
	// DigestKeyRotation is how long a region's digest signing key is used
	// before a new key pair replaces it (AWS's keys: about 30 days).
	DigestKeyRotation time.Duration `yaml:"digest_key_rotation"`
}

// Trails limits trails.
type Trails struct {
	// MaxPerRegion is the number of trails an account may have in a
	// region (AWS: 5).
	MaxPerRegion int `yaml:"max_per_region"`
}

// Defaults of the trails sections.
const (
	DefaultDeliveryInterval  = 5 * time.Minute
	DefaultDigestInterval    = time.Hour
	DefaultDigestKeyRotation = 30 * 24 * time.Hour
	DefaultMaxTrails         = 5
)

// bucketName is S3's rule for new bucket names: 3-63 characters of
// lower-case letters, digits, dots and hyphens, starting and ending with a
// letter or digit.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func (d *decoder) bucket(n *yaml.Node, path string) Bucket {
	var b Bucket
	d.mapping(n, path,
		field{"name", true, func(v *yaml.Node, path string) {
			if s, ok := d.str(v, path); ok {
				if !bucketName.MatchString(s) {
					d.failf(v, path, "%s is not a valid S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')", quote(s))
				} else if first, dup := d.bucketNames[s]; dup {
					d.failf(v, path, "bucket %s is configured twice (first on line %d)", quote(s), first)
				} else {
					d.bucketNames[s] = v.Line
				}
				b.Name = s
			}
		}},
		field{"s3", false, func(v *yaml.Node, path string) {
			b.S3 = &S3Bucket{}
			d.mapping(v, path,
				field{"endpoint", false, func(v *yaml.Node, path string) {
					if s, ok := d.str(v, path); ok {
						if u, err := url.Parse(s); s != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
							d.failf(v, path, "%s is not an http(s) URL", quote(s))
						}
						b.S3.Endpoint = s
					}
				}},
				field{"region", false, func(v *yaml.Node, path string) { b.S3.Region, _ = d.str(v, path) }},
				field{"access_key_id", false, func(v *yaml.Node, path string) { b.S3.AccessKeyID, _ = d.str(v, path) }},
				field{"secret_access_key", false, func(v *yaml.Node, path string) { b.S3.SecretAccessKey, _ = d.str(v, path) }},
				field{"path_style", false, func(v *yaml.Node, path string) { b.S3.PathStyle, _ = d.boolean(v, path) }},
			)
		}},
		field{"local_dir", false, func(v *yaml.Node, path string) { b.LocalDir, _ = d.str(v, path) }},
	)
	if (b.S3 == nil) == (b.LocalDir == "") {
		d.failf(n, path, "a bucket needs exactly one of s3 and local_dir")
	}
	return b
}

func (d *decoder) delivery(n *yaml.Node, path string, dl *Delivery) {
	d.mapping(n, path,
		field{"interval", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Second, 24*time.Hour); ok {
				dl.Interval = t
			}
		}},
		field{"digest_interval", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Second, 24*time.Hour); ok {
				dl.DigestInterval = t
			}
		}},
		field{"digest_key_rotation", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Minute, 10*365*24*time.Hour); ok {
				dl.DigestKeyRotation = t
			}
		}},
	)
}

func (d *decoder) trails(n *yaml.Node, path string, t *Trails) {
	d.mapping(n, path,
		field{"max_per_region", false, func(v *yaml.Node, path string) {
			if m, ok := d.integer(v, path, 1, 1000, "trails", "AWS allows 5"); ok {
				t.MaxPerRegion = m
			}
		}},
	)
}

// duration decodes a Go duration ("5m", "1s") in [lo, hi].
func (d *decoder) duration(n *yaml.Node, path string, lo, hi time.Duration) (time.Duration, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return 0, false
	}
	t, err := time.ParseDuration(s)
	if err != nil || t < lo || t > hi {
		d.failf(n, path, "want a duration from %s to %s (like 5m or 1s), got %s", lo, hi, quote(s))
		return 0, false
	}
	return t, true
}

// boolean decodes true or false.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.failf(n, path, "want true or false, got %s", quote(n.Value))
		return false, false
	}
	return b, true
}

// Organization is an AWS Organizations organization as cairn knows it:
// the management account may create organization trails, which collect
// the events of every member account too.
//
//	organization:
//	  id: o-a1b2c3d4e5
//	  management_account: "111111111111"
//	  member_accounts: ["222222222222", "333333333333"]
type Organization struct {
	ID                string   `yaml:"id"`
	ManagementAccount string   `yaml:"management_account"`
	MemberAccounts    []string `yaml:"member_accounts"`
}

var orgIDRE = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)

func (d *decoder) organization(n *yaml.Node, path string) *Organization {
	o := &Organization{}
	seen := map[string]int{}
	acct := func(v *yaml.Node, path string) string {
		s, ok := d.str(v, path)
		switch first, dup := seen[s]; {
		case !ok:
		case !accountIDRE.MatchString(s):
			d.failf(v, path, "%s is not a 12-digit account ID", quote(s))
		case dup:
			d.failf(v, path, "account %s is already in the organization (line %d)", s, first)
		default:
			seen[s] = v.Line
		}
		return s
	}
	d.mapping(n, path,
		field{"id", true, func(v *yaml.Node, path string) {
			if s, ok := d.str(v, path); ok {
				if !orgIDRE.MatchString(s) {
					d.failf(v, path, "%s is not an organization ID (o- and 10 to 32 characters a-z, 0-9)", quote(s))
				}
				o.ID = s
			}
		}},
		field{"management_account", true, func(v *yaml.Node, path string) { o.ManagementAccount = acct(v, path) }},
		field{"member_accounts", false, func(v *yaml.Node, path string) { o.MemberAccounts = list(d, v, path, acct) }},
	)
	return o
}
