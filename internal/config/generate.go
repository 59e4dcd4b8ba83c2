package config

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/cairn-audit/cairn/internal/atomicfile"
)

// GeneratedFile is the name, in the data dir, of the file Generate keeps
// the generated account and key in.
const GeneratedFile = "credentials.yaml"

// GeneratedUser is the name of the user Generate creates.
const GeneratedUser = "admin"

// Generated says where Generate's account and key are, and whether this
// call created them (so serve can announce a new key once).
type Generated struct {
	Created     bool   // true when this call created the file (the first start)
	Path        string // the file, dataDir/credentials.yaml
	AccountID   string // the file's first account
	UserName    string // that account's first user
	AccessKeyID string // the file's first access key
}

const generatedHeader = `# cairn created this account and access key on its first start without a
# config file, and reads them from here on every start without one. To keep
# them when you write a config file (--config), copy the accounts below into it.
# The user is a responder: its key imports and looks up the events of every
# account (responder: true).
`

// Generate returns the config kept in dataDir/credentials.yaml. The first
// time, when the file does not exist, it creates it (mode 0600, and dataDir
// if needed) with one account (a random 12-digit ID), user admin and a
// random access key; later calls read it back, edits included. The file is
// in the config file's format.
func Generate(dataDir string) (*Config, Generated, error) {
	path := filepath.Join(dataDir, GeneratedFile)
	c, err := Load(path)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		switch err = create(dataDir, path); {
		case err == nil:
			created = true
		case errors.Is(err, fs.ErrExist): // another cairn created it first: use that one
		default:
			return nil, Generated{}, fmt.Errorf("config: create the generated credentials: %w", err)
		}
		c, err = Load(path)
	}
	if err != nil {
		return nil, Generated{}, fmt.Errorf("config: the generated credentials (fix %s, or move it away to make a new account): %w", path, err)
	}
	return c, generated(c, path, created), nil
}

func generated(c *Config, path string, created bool) Generated {
	g := Generated{Created: created, Path: path}
	g.AccessKeyID, _, _ = c.FirstKey()
	if len(c.Accounts) > 0 {
		g.AccountID = c.Accounts[0].ID
		if len(c.Accounts[0].Users) > 0 {
			g.UserName = c.Accounts[0].Users[0].Name
		}
	}
	return g
}

// create writes a new account and key to path, failing with fs.ErrExist
// if path exists. The file appears whole or not at all: it is written to a
// temporary file and linked into place.
func create(dataDir, path string) error {
	file := struct {
		Accounts []Account `yaml:"accounts"`
	}{[]Account{{
		ID: random("123456789", 1) + random(digits, 11),
		Users: []User{{Name: GeneratedUser, Responder: true, AccessKeys: []AccessKey{{
			ID:     "AKIA" + random(upperAlnum, 16),
			Secret: random(secretChars, 40),
		}}}},
	}}}
	var body bytes.Buffer
	body.WriteString(generatedHeader)
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(file); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	return atomicfile.Create(path, body.Bytes(), 0o600)
}

const (
	digits      = "0123456789"
	upperAlnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// random returns n characters drawn uniformly from alphabet (at most 256
// characters) with crypto/rand.
func random(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet) // bytes at or above limit would bias the draw
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf) // never fails: crypto/rand crashes the program instead
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// principalID derives the IAM-style unique ID of a user (AIDA and 17
// characters of A-Z and 2-7) from its account and name, so it is the same
// on every start. Records keep it, so the derivation must not change.
func principalID(account, user string) string {
	h := sha256.Sum256([]byte(account + "/" + user))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := []byte("AIDA")
	for i := range 17 {
		b = append(b, alphabet[h[i]%32])
	}
	return string(b)
}
