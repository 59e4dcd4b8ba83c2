package trail

import (
	"context"
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

// DefaultKeyRotation is how long a key pair signs digests before a new one
// replaces it (AWS's published keys show about 30-day windows).
const DefaultKeyRotation = 30 * 24 * time.Hour

// SigningKey is one region's RSA-2048 key pair and its validity window.
type SigningKey struct {
	Region string
	// Start and End bound the window in which the key signs digests; the
	// public key stays listed for validation of what it signed.
	Start, End time.Time
	private    *rsa.PrivateKey
	// DER is the PKCS#1 RSAPublicKey (what ListPublicKeys returns).
	DER []byte
	// Fingerprint is the lowercase hex MD5 of DER, as AWS computes it.
	Fingerprint string
}

// Sign returns the SHA256withRSA (RSASSA-PKCS1-v1_5) signature of msg.
func (k *SigningKey) Sign(msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	return rsa.SignPKCS1v15(rand.Reader, k.private, crypto.SHA256, h[:])
}

// Fingerprint returns AWS's fingerprint of a PKCS#1 public key: the
// lowercase hex MD5 of its DER bytes.
func KeyFingerprint(der []byte) string {
	h := md5.Sum(der)
	return hex.EncodeToString(h[:])
}

// Keyring keeps the key pairs of every region in one file of the data dir
// (mode 0600), creating a region's first key on demand and a new one when
// the current key's window ends.
type Keyring struct {
	path     string
	rotation time.Duration

	mu   sync.Mutex
	keys []*SigningKey // sorted by region, then Start
	// bits is the key size (2048; tests may not change it).
	bits int

	// state, when set, keeps the keys every node shares (under keysFile;
	// OpenSharedKeyring) instead of path; version is the stored version
	// keys were read at.
	state   audit.StateStore
	version int64
}

type storedKey struct {
	Region  string    `json:"region"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Private []byte    `json:"privateKeyPKCS1"`
}

// keysFile is the keyring's file in the data dir.
const keysFile = "digest-keys.json"

// OpenKeyring opens the keyring kept in dir, for the process that owns
// dir (the server): it removes the temporary files a crash left beside the
// keys file (they hold private keys) and may create and save keys
// (Current). rotation <= 0 means DefaultKeyRotation. A reader of another
// process's data dir uses ReadPublicKeys, which changes nothing.
func OpenKeyring(dir string, rotation time.Duration) (*Keyring, error) {
	if rotation <= 0 {
		rotation = DefaultKeyRotation
	}
	kr := &Keyring{path: filepath.Join(dir, keysFile), rotation: rotation, bits: 2048}
	if err := atomicfile.CleanTemp(kr.path); err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	keys, err := readKeys(kr.path)
	if err != nil {
		return nil, err
	}
	kr.keys = keys
	kr.sortLocked()
	return kr, nil
}

// ReadPublicKeys returns the public keys of region kept in dir whose
// validity window overlaps [start, end], oldest first (Keyring.Public). It
// only reads: safe while a server holds dir and saves keys (the file is
// replaced atomically), and it leaves that server's temporary files alone.
func ReadPublicKeys(dir, region string, start, end time.Time) ([]SigningKey, error) {
	keys, err := readKeys(filepath.Join(dir, keysFile))
	if err != nil {
		return nil, err
	}
	kr := &Keyring{keys: keys}
	kr.sortLocked()
	return kr.Public(region, start, end), nil
}

// OpenSharedKeyring opens the keyring kept in st, which other nodes
// share: every node signs a region's digests with the same key and lists
// the same public keys. Each use compares the stored version first (one
// small query) and reads the keys again when another node added one; a
// new key is written with compare-and-swap, and a node that loses the
// race uses the winner's key. rotation <= 0 means DefaultKeyRotation.
func OpenSharedKeyring(ctx context.Context, st audit.StateStore, rotation time.Duration) (*Keyring, error) {
	if rotation <= 0 {
		rotation = DefaultKeyRotation
	}
	kr := &Keyring{rotation: rotation, bits: 2048, state: st}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if err := kr.refreshLocked(ctx); err != nil {
		return nil, err
	}
	return kr, nil
}

// refreshLocked reads a shared keyring again if another node changed it.
func (kr *Keyring) refreshLocked(ctx context.Context) error {
	if kr.state == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := kr.state.Version(ctx, keysFile)
	if err != nil {
		return fmt.Errorf("digest: read the keys' version: %w", err)
	}
	if v == kr.version {
		return nil
	}
	b, v, err := kr.state.Get(ctx, keysFile)
	if err != nil {
		return fmt.Errorf("digest: read the keys: %w", err)
	}
	keys, err := parseKeys(b, "the shared "+keysFile)
	if err != nil {
		return err
	}
	kr.keys, kr.version = keys, v
	kr.sortLocked()
	return nil
}

// readKeys reads a keys file (none when it does not exist).
func readKeys(path string) ([]*SigningKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("digest: read %s: %w", path, err)
	}
	return parseKeys(b, path)
}

// parseKeys decodes the keys kept in b (nil: none); path names b in errors.
func parseKeys(b []byte, path string) ([]*SigningKey, error) {
	if b == nil {
		return nil, nil
	}
	var stored []storedKey
	if err := json.Unmarshal(b, &stored); err != nil {
		return nil, fmt.Errorf("digest: %s is damaged: %w", path, err)
	}
	keys := make([]*SigningKey, 0, len(stored))
	for _, s := range stored {
		priv, err := x509.ParsePKCS1PrivateKey(s.Private)
		if err != nil {
			return nil, fmt.Errorf("digest: %s: key of %s from %s: %w", path, s.Region, s.Start.Format(time.RFC3339), err)
		}
		keys = append(keys, newKey(s.Region, s.Start, s.End, priv))
	}
	return keys, nil
}

func newKey(region string, start, end time.Time, priv *rsa.PrivateKey) *SigningKey {
	der := x509.MarshalPKCS1PublicKey(&priv.PublicKey)
	return &SigningKey{Region: region, Start: start.UTC(), End: end.UTC(), private: priv, DER: der, Fingerprint: KeyFingerprint(der)}
}

func (kr *Keyring) sortLocked() {
	sort.Slice(kr.keys, func(i, j int) bool {
		a, b := kr.keys[i], kr.keys[j]
		if a.Region != b.Region {
			return a.Region < b.Region
		}
		return a.Start.Before(b.Start)
	})
}

// Current returns the key that signs region's digests at now, creating
// and saving a new key pair when the region has none valid at now.
func (kr *Keyring) Current(region string, now time.Time) (*SigningKey, error) {
	now = now.UTC()
	kr.mu.Lock()
	defer kr.mu.Unlock()
	for range 8 {
		if err := kr.refreshLocked(context.Background()); err != nil {
			return nil, err
		}
		var cur *SigningKey
		for _, k := range kr.keys {
			if k.Region == region && !now.Before(k.Start) && now.Before(k.End) {
				cur = k // the latest one started wins
			}
		}
		if cur != nil {
			return cur, nil
		}
		priv, err := rsa.GenerateKey(rand.Reader, kr.bits)
		if err != nil {
			return nil, fmt.Errorf("digest: generate a key for %s: %w", region, err)
		}
		start := now.Truncate(time.Second)
		k := newKey(region, start, start.Add(kr.rotation), priv)
		kr.keys = append(kr.keys, k)
		kr.sortLocked()
		err = kr.saveLocked()
		if err == nil {
			return k, nil
		}
		kr.keys = remove(kr.keys, k)
		if !errors.Is(err, audit.ErrStateConflict) {
			return nil, err
		}
		// Another node changed the keys (perhaps this region's): read
		// theirs and look again.
	}
	return nil, fmt.Errorf("digest: keys of %s: %w", region, audit.ErrStateConflict)
}

func remove(keys []*SigningKey, k *SigningKey) []*SigningKey {
	out := keys[:0]
	for _, x := range keys {
		if x != k {
			out = append(out, x)
		}
	}
	return out
}

// Public returns region's keys whose validity window overlaps
// [start, end], oldest first.
func (kr *Keyring) Public(region string, start, end time.Time) []SigningKey {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	// A shared keyring that cannot be read lists the keys last read.
	_ = kr.refreshLocked(context.Background())
	var out []SigningKey
	for _, k := range kr.keys {
		if k.Region == region && !k.End.Before(start) && !k.Start.After(end) {
			out = append(out, SigningKey{Region: k.Region, Start: k.Start, End: k.End, DER: k.DER, Fingerprint: k.Fingerprint})
		}
	}
	return out
}

// saveLocked writes the keyring atomically and durably, mode 0600 (the
// private keys are in it; the umask can only narrow it).
func (kr *Keyring) saveLocked() error {
	stored := make([]storedKey, len(kr.keys))
	for i, k := range kr.keys {
		stored[i] = storedKey{Region: k.Region, Start: k.Start, End: k.End, Private: x509.MarshalPKCS1PrivateKey(k.private)}
	}
	b, err := json.MarshalIndent(stored, "", "  ")
	if err != nil {
		return fmt.Errorf("digest: save keys: %w", err)
	}
	if kr.state != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := kr.state.Put(ctx, keysFile, b, kr.version)
		if err != nil {
			return fmt.Errorf("digest: save keys: %w", err)
		}
		kr.version = v
		return nil
	}
	if err := atomicfile.Write(kr.path, b, 0o600); err != nil {
		return fmt.Errorf("digest: save keys: %w", err)
	}
	return nil
}
