// Package config reads cairn's YAML config file: defaults, strict decoding
// (unknown keys are refused), and validation whose errors name the file,
// the line and the reason. Without a config file, Generate creates one
// account and one key and keeps them in the data dir.
package config

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole config file.
type Config struct {
	EventHistory EventHistory `yaml:"event_history"`
	Accounts     []Account    `yaml:"accounts"`

	keys map[string]Principal
}

// EventHistory configures Event History.
type EventHistory struct {
	// RetentionDays is how long events are kept (default 90; 0 = forever).
	RetentionDays *int `yaml:"retention_days"`
}

// Account is one AWS-style account.
type Account struct {
	ID    string `yaml:"id"`
	Users []User `yaml:"users"`
}

// User is an IAM-style user of an account.
type User struct {
	Name       string      `yaml:"name"`
	AccessKeys []AccessKey `yaml:"access_keys"`
}

// AccessKey is a SigV4 key pair.
type AccessKey struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"`
}

// Principal is what a verified access key stands for.
type Principal struct {
	AccountID   string
	UserName    string
	ARN         string
	PrincipalID string
	Secret      string
}

// DefaultRetentionDays is Event History's retention when none is set.
const DefaultRetentionDays = 90

// Retention returns how long Event History keeps events; 0 means forever.
func (c *Config) Retention() time.Duration {
	d := DefaultRetentionDays
	if c.EventHistory.RetentionDays != nil {
		d = *c.EventHistory.RetentionDays
	}
	return time.Duration(d) * 24 * time.Hour
}

// Principal returns the principal of an access key.
func (c *Config) Principal(accessKeyID string) (Principal, bool) {
	p, ok := c.keys[accessKeyID]
	return p, ok
}

// Secret returns the secret of an access key (the SigV4 verifier's lookup).
func (c *Config) Secret(accessKeyID string) (string, bool) {
	p, ok := c.keys[accessKeyID]
	return p.Secret, ok
}

// FirstKey returns the first access key of the first account.
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

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, b)
}

// Error is a config mistake at a line of a file.
type Error struct {
	File string
	Line int
	Path string // the key, e.g. accounts[0].id
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Parse decodes and validates a config; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "the file is empty; it needs at least an accounts: list with one account, user and access key"}
		}
		return nil, &Error{File: name, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	p := &parser{file: name}
	c := &Config{}
	p.document(&root, c)
	if p.err != nil {
		return nil, p.err
	}
	if err := c.index(name, &root); err != nil {
		return nil, err
	}
	return c, nil
}

type parser struct {
	file string
	err  *Error
}

func (p *parser) fail(n *yaml.Node, path, format string, args ...any) {
	if p.err == nil {
		p.err = &Error{File: p.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)}
	}
}

func (p *parser) document(root *yaml.Node, c *Config) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	p.mapping(n, "", map[string]func(*yaml.Node){
		"event_history": func(v *yaml.Node) {
			p.mapping(v, "event_history", map[string]func(*yaml.Node){
				"retention_days": func(v *yaml.Node) {
					var d int
					if v.Kind != yaml.ScalarNode || v.Decode(&d) != nil {
						p.fail(v, "event_history.retention_days", "%q is not a whole number of days", v.Value)
						return
					}
					if d < 0 || d > 36500 {
						p.fail(v, "event_history.retention_days", "%d is out of range: want 0 (keep forever) to 36500", d)
						return
					}
					c.EventHistory.RetentionDays = &d
				},
			})
		},
		"accounts": func(v *yaml.Node) {
			p.list(v, "accounts", func(i int, v *yaml.Node) {
				path := fmt.Sprintf("accounts[%d]", i)
				var a Account
				p.mapping(v, path, map[string]func(*yaml.Node){
					"id": func(v *yaml.Node) { a.ID = p.str(v, path+".id") },
					"users": func(v *yaml.Node) {
						p.list(v, path+".users", func(j int, v *yaml.Node) {
							upath := fmt.Sprintf("%s.users[%d]", path, j)
							var u User
							p.mapping(v, upath, map[string]func(*yaml.Node){
								"name": func(v *yaml.Node) { u.Name = p.str(v, upath+".name") },
								"access_keys": func(v *yaml.Node) {
									p.list(v, upath+".access_keys", func(k int, v *yaml.Node) {
										kpath := fmt.Sprintf("%s.access_keys[%d]", upath, k)
										var key AccessKey
										p.mapping(v, kpath, map[string]func(*yaml.Node){
											"id":     func(v *yaml.Node) { key.ID = p.str(v, kpath+".id") },
											"secret": func(v *yaml.Node) { key.Secret = p.str(v, kpath+".secret") },
										}, "id", "secret")
										u.AccessKeys = append(u.AccessKeys, key)
									})
								},
							}, "name", "access_keys")
							a.Users = append(a.Users, u)
						})
					},
				}, "id", "users")
				c.Accounts = append(c.Accounts, a)
			})
		},
	}, "accounts")
}

// mapping walks a mapping node: every key must be known, required keys present.
func (p *parser) mapping(n *yaml.Node, path string, fields map[string]func(*yaml.Node), required ...string) {
	if p.err != nil {
		return
	}
	where := path
	if where == "" {
		where = "the top level"
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping of keys, got %s", kind(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			p.fail(k, path, "unknown key %q in %s (known: %s)", k.Value, where, strings.Join(sorted(known), ", "))
			return
		}
		if seen[k.Value] {
			p.fail(k, path, "key %q appears twice", k.Value)
			return
		}
		seen[k.Value] = true
		f(v)
		if p.err != nil {
			return
		}
	}
	for _, r := range required {
		if !seen[r] {
			p.fail(n, path, "missing required key %q", r)
			return
		}
	}
}

func (p *parser) list(n *yaml.Node, path string, each func(int, *yaml.Node)) {
	if p.err != nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "want a list, got %s", kind(n))
		return
	}
	for i, v := range n.Content {
		each(i, v)
		if p.err != nil {
			return
		}
	}
}

func (p *parser) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, path, "want a string, got %s", kind(n))
		return ""
	}
	return n.Value
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	userRE    = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	keyRE     = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
)

// index validates the decoded config and builds the key table. root gives
// the lines for messages.
func (c *Config) index(file string, root *yaml.Node) error {
	line := func(path ...int) int { return lineOf(root, path...) }
	fail := func(l int, path, format string, args ...any) error {
		return &Error{File: file, Line: l, Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	if len(c.Accounts) == 0 {
		return fail(line(), "accounts", "at least one account with one user and one access key is required")
	}
	c.keys = map[string]Principal{}
	accounts := map[string]bool{}
	for i, a := range c.Accounts {
		path := fmt.Sprintf("accounts[%d]", i)
		if !accountRE.MatchString(a.ID) {
			return fail(line(i), path+".id", "%q is not a 12-digit account ID", a.ID)
		}
		if accounts[a.ID] {
			return fail(line(i), path+".id", "account %s appears twice", a.ID)
		}
		accounts[a.ID] = true
		users := map[string]bool{}
		for j, u := range a.Users {
			upath := fmt.Sprintf("%s.users[%d]", path, j)
			if !userRE.MatchString(u.Name) {
				return fail(line(i, j), upath+".name", "%q is not a valid user name (1-64 of letters, digits and +=,.@_-)", u.Name)
			}
			if users[u.Name] {
				return fail(line(i, j), upath+".name", "user %q appears twice in account %s", u.Name, a.ID)
			}
			users[u.Name] = true
			for k, key := range u.AccessKeys {
				kpath := fmt.Sprintf("%s.access_keys[%d]", upath, k)
				if !keyRE.MatchString(key.ID) {
					return fail(line(i, j, k), kpath+".id", "%q is not a valid access key ID (16-128 of A-Z and 0-9)", key.ID)
				}
				if key.Secret == "" {
					return fail(line(i, j, k), kpath+".secret", "the secret is empty")
				}
				if _, dup := c.keys[key.ID]; dup {
					return fail(line(i, j, k), kpath+".id", "access key %s appears twice", key.ID)
				}
				c.keys[key.ID] = Principal{
					AccountID:   a.ID,
					UserName:    u.Name,
					ARN:         "arn:aws:iam::" + a.ID + ":user/" + u.Name,
					PrincipalID: principalID(a.ID, u.Name),
					Secret:      key.Secret,
				}
			}
		}
	}
	if len(c.keys) == 0 {
		return fail(line(), "accounts", "no access key is configured: at least one is required")
	}
	return nil
}

// lineOf returns the line of accounts[i].users[j].access_keys[k] (as many
// indexes as given), or of the accounts key.
func lineOf(root *yaml.Node, idx ...int) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	n = child(n, "accounts")
	if n == nil {
		return 0
	}
	for depth, i := range idx {
		if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
			return n.Line
		}
		n = n.Content[i]
		if depth+1 < len(idx) {
			next := "users"
			if depth == 1 {
				next = "access_keys"
			}
			if c := child(n, next); c != nil {
				n = c
			}
		}
	}
	return n.Line
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// principalID derives a stable IAM-style unique ID (AIDA + 17 characters).
func principalID(account, user string) string {
	h := sha256.Sum256([]byte(account + "/" + user))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b strings.Builder
	b.WriteString("AIDA")
	for i := range 17 {
		b.WriteByte(alphabet[h[i]%32])
	}
	return b.String()
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// Generated describes the account and key of a config made by Generate.
type Generated struct {
	// Created is true when this call created them (the first start).
	Created   bool
	Path      string
	AccountID string
	UserName  string
}

// GeneratedFile is the name of the generated config in the data dir.
const GeneratedFile = "credentials.yaml"

// Generate returns the config kept in dataDir/credentials.yaml, creating it
// the first time with a random account ID, user admin and a random key.
func Generate(dataDir string) (*Config, Generated, error) {
	path := filepath.Join(dataDir, GeneratedFile)
	if b, err := os.ReadFile(path); err == nil {
		c, err := Parse(path, b)
		if err != nil {
			return nil, Generated{}, err
		}
		return c, Generated{Path: path, AccountID: c.Accounts[0].ID, UserName: c.Accounts[0].Users[0].Name}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, Generated{}, fmt.Errorf("config: %w", err)
	}
	acct := "1" + randomString("0123456789", 11)
	keyID := "AKIA" + randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	secret := randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40)
	body := fmt.Sprintf("# Generated by cairn on its first start without --config. Copy it into a config file to keep it.\n"+
		"accounts:\n  - id: %q\n    users:\n      - name: admin\n        access_keys:\n          - id: %s\n            secret: %q\n",
		acct, keyID, secret)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, Generated{}, fmt.Errorf("config: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, Generated{}, fmt.Errorf("config: %w", err)
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return nil, Generated{}, fmt.Errorf("config: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, Generated{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, []byte(body))
	if err != nil {
		return nil, Generated{}, err
	}
	return c, Generated{Created: true, Path: path, AccountID: acct, UserName: "admin"}, nil
}

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}
