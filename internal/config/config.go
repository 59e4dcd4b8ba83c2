// Package config reads cairn's YAML config file: strict decoding (unknown
// keys and wrong types are refused), defaults, and validation whose errors
// name the file, the line and the reason:
//
//	cairn.yaml:7: accounts[0].id: "1234" is not a 12-digit account ID
//
// Without a config file, Generate creates one account and one access key and
// keeps them in the data dir, in the same format.
//
// The file today:
//
//	event_history:
//	  retention_days: 90      # default 90; 0 keeps events forever
//	  record_block_kib: 64    # default 64; 0: one frame per record
//	accounts:
//	  - id: "111111111111"
//	    users:
//	      - name: alice
//	        responder: true   # imports and looks up every account (default false)
//	        access_keys:
//	          - id: AKIAALICE00000000001
//	            secret: alice-secret-key
package config

import (
	"fmt"
	"net"
	"os"
	"time"
)

// Config is the whole config file. Make one with Load, Parse or Generate:
// they validate it and build the key index that Principal and Secret use.
// Changing Accounts afterwards does not update that index.
type Config struct {
	EventHistory EventHistory `yaml:"event_history"`
	Accounts     []Account    `yaml:"accounts"`
	// Buckets, Delivery and Trails configure trails (trails.go).
	Buckets  []Bucket `yaml:"buckets"`
	Delivery Delivery `yaml:"delivery"`
	Trails   Trails   `yaml:"trails"`
	// Organization makes organization trails possible (trails.go).
	Organization *Organization `yaml:"organization"`
	// Insights configures the Insights detector (insights.go).
	Insights Insights `yaml:"insights"`
	// Gateway configures the recording gateway (gateway.go); nil: none.
	Gateway *Gateway `yaml:"gateway"`
	// Lake configures CloudTrail Lake (lake.go).
	Lake Lake `yaml:"lake"`
	// API limits the CloudTrail API server's clients (api.go).
	API API `yaml:"api"`
	// Ingest bounds the ingest pipeline (ingest.go).
	Ingest Ingest `yaml:"ingest"`
	// Console configures the web console (console.go).
	Console Console `yaml:"console"`
	// Store chooses Event History's store (store.go).
	Store Store `yaml:"store"`
	// Cluster names the node and times its leases (cluster.go).
	Cluster Cluster `yaml:"cluster"`
	// Detections configures live detection with Sigma rules
	// (detections.go); nil: none.
	Detections *Detections `yaml:"detections"`
	// TrustedProxies are the reverse proxies in front of every edge
	// (proxies.go); each edge's own trusted_proxies replaces it there.
	// Parse copies the list each edge uses into its section.
	TrustedProxies []*net.IPNet `yaml:"trusted_proxies"`

	keys map[string]Principal // access key ID -> principal
}

// EventHistory configures Event History (LookupEvents).
type EventHistory struct {
	// RetentionDays is how many days events are kept: 0 keeps them
	// forever, at most MaxRetentionDays. Parse sets DefaultRetentionDays
	// when the file does not say.
	RetentionDays int `yaml:"retention_days"`
	// RecordBlockKiB bounds the records the embedded store compresses
	// together (docs/store.md, "Record blocks"), at most MaxRecordBlockKiB;
	// 0 stores one frame per record, which a cairn from before blocks can
	// read. Parse sets DefaultRecordBlockKiB when the file does not say.
	RecordBlockKiB int `yaml:"record_block_kib"`
	// MemoryLimit is DuckDB's memory_limit for the embedded store in a
	// server (its buffer pool: the file's blocks it keeps, its operators'
	// memory), a size such as 512MB; DuckDB's own default is 80% of the
	// machine's memory. Parse sets DefaultEventHistoryMemoryLimit when the
	// file does not say (docs/store.md, "Memory of a server").
	MemoryLimit string `yaml:"memory_limit"`
	// Threads is DuckDB's worker threads for the embedded store in a
	// server (0: one per core, DuckDB's default). Parse sets
	// DefaultEventHistoryThreads, 1, when the file does not say: a
	// server's store runs many small statements (each stage's appends and
	// COMMIT, the duplicate checks), whose tasks a second thread only
	// hands back and forth (docs/store.md, "DuckDB's threads in a server").
	Threads int `yaml:"threads"`
}

// Account is one AWS-style account: the owner of the records its users make.
type Account struct {
	ID    string `yaml:"id"` // 12 digits
	Users []User `yaml:"users"`
}

// User is an IAM-style user of an account.
type User struct {
	Name string `yaml:"name"` // 1-64 of [\w+=,.@-], unique in its account
	// Responder marks an incident responder: the user's keys import
	// records of any account through the server and look up every
	// account's events (docs/security.md). The user's own calls are still
	// recorded in its account. The key cairn generates without a config
	// is a responder's.
	Responder  bool        `yaml:"responder,omitempty"`
	AccessKeys []AccessKey `yaml:"access_keys"`
}

// AccessKey is a SigV4 key pair.
type AccessKey struct {
	ID     string `yaml:"id"` // 16-128 of [A-Z0-9], unique across accounts
	Secret string `yaml:"secret"`
}

// Principal is what a verified access key stands for: the IAM-shaped
// identity cairn writes into the records the key's requests make.
type Principal struct {
	AccessKeyID string
	Secret      string
	AccountID   string
	UserName    string
	ARN         string // arn:aws:iam::<account>:user/<name>
	PrincipalID string // AIDA + 17 characters, stable for an account and user name
	Responder   bool   // the user is a responder (User.Responder)
}

const (
	// DefaultRetentionDays is Event History's retention when the file sets none.
	DefaultRetentionDays = 90
	// MaxRetentionDays is the longest retention a file may set (100 years).
	MaxRetentionDays = 36500
	// DefaultRecordBlockKiB is the record block size when the file sets none.
	DefaultRecordBlockKiB = 64
	// MaxRecordBlockKiB is the largest record block a file may set.
	MaxRecordBlockKiB = 16384
	// DefaultEventHistoryMemoryLimit is the embedded store's DuckDB
	// memory_limit when the file sets none (issue 19: RSS at most 1 GB
	// at 10M events): with 8 clients on the 10M store the server held
	// 891 MB RSS at 256MB, 1,210 MB at 512MB, 2,624 MB at DuckDB's default
	// (docs/store.md, "Memory of a server").
	DefaultEventHistoryMemoryLimit = "256MB"
	// DefaultEventHistoryThreads is the embedded store's DuckDB threads
	// in a server (EventHistory.Threads).
	DefaultEventHistoryThreads = 1
	// MinEventHistoryMemoryMB is the least memory_limit a file may set:
	// DuckDB needs room for a lookup's scan and the appends' transaction.
	MinEventHistoryMemoryMB = 64
)

// Retention returns how long Event History keeps events; 0 means forever.
func (c *Config) Retention() time.Duration {
	return time.Duration(c.EventHistory.RetentionDays) * 24 * time.Hour
}

// Principal returns the principal of an access key, and false for a key the
// config does not have.
func (c *Config) Principal(accessKeyID string) (Principal, bool) {
	p, ok := c.keys[accessKeyID]
	return p, ok
}

// Secret returns the secret of an access key, and false for a key the
// config does not have. It is the SigV4 verifier's lookup.
func (c *Config) Secret(accessKeyID string) (string, bool) {
	p, ok := c.keys[accessKeyID]
	return p.Secret, ok
}

// FirstKey returns the first access key of the file (in file order), which
// the quick start hands to the AWS CLI.
func (c *Config) FirstKey() (id, secret string, ok bool) {
	for _, a := range c.Accounts {
		for _, u := range a.Users {
			for _, k := range u.AccessKeys {
				return k.ID, k.Secret, true
			}
		}
	}
	return "", "", false
}

// Load reads and validates the config file at path. A bad file gives an
// ErrorList.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates a config file's contents, applying defaults;
// name is the file name its errors give. A bad file gives an ErrorList
// with every problem found, in file order.
func Parse(name string, data []byte) (*Config, error) {
	c, errs := decode(name, data)
	if len(errs) > 0 {
		return nil, errs
	}
	c.keys = index(c.Accounts)
	return c, nil
}

// index maps every access key ID to its principal.
func index(accounts []Account) map[string]Principal {
	keys := map[string]Principal{}
	for _, a := range accounts {
		for _, u := range a.Users {
			for _, k := range u.AccessKeys {
				keys[k.ID] = Principal{
					AccessKeyID: k.ID,
					Secret:      k.Secret,
					AccountID:   a.ID,
					UserName:    u.Name,
					ARN:         "arn:aws:iam::" + a.ID + ":user/" + u.Name,
					PrincipalID: principalID(a.ID, u.Name),
					Responder:   u.Responder,
				}
			}
		}
	}
	return keys
}
