package gateway

import (
	"bufio"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

// DefaultSessionLifetime is how long credentials whose STS response gave no
// Expiration are remembered (GetSessionToken's default duration).
const DefaultSessionLifetime = 12 * time.Hour

// DefaultMaxSessions is Config.MaxSessions's default: the STS credentials
// remembered at most.
const DefaultMaxSessions = 100000

// sessionCache remembers the temporary credentials STS issued through the
// gateway, so that later calls with them are recorded as their session.
// Entries expire at the credentials' Expiration; at most max are kept,
// the least recently used dropped first. With a file, every session learnt
// is appended to it (JSON lines) and the file is read back at start, so a
// restart keeps identities; it is compacted at start and when it holds
// twice as many lines as sessions.
type sessionCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // of *sessionEntry, most recently used first
	byKey map[string]*list.Element
	path  string
	file  *os.File
	lines int
	now   func() time.Time
	log   *slog.Logger
	// state, when set, keeps the sessions in a StateStore other gateway
	// nodes share (one key a session under sharedPrefix) instead of
	// path: a session learnt through one node is known to every node.
	state audit.StateStore
	puts  int // shared puts since the last sweep of expired sessions
}

// sharedPrefix is where the sessions live in a shared StateStore.
const sharedPrefix = "gateway-sessions/"

// sweepEvery is how many shared puts go between two sweeps of the
// expired sessions of the shared store.
const sweepEvery = 1024

type sessionEntry struct {
	key string
	s   *session
}

// sessionLine is a session as the file keeps it (no secrets: STS's secret
// keys and session tokens are never read).
type sessionLine struct {
	AccessKeyID string    `json:"accessKeyId"`
	Expires     time.Time `json:"expires"`
	Created     string    `json:"created"`
	Account     string    `json:"account"`
	RoleARN     string    `json:"roleArn,omitempty"`
	AssumedID   string    `json:"assumedId,omitempty"`
	ARN         string    `json:"arn,omitempty"`
	Federated   bool      `json:"federated,omitempty"`
	Issuer      *struct {
		PrincipalID string `json:"principalId"`
		ARN         string `json:"arn"`
		AccountID   string `json:"accountId"`
		UserName    string `json:"userName"`
	} `json:"issuer,omitempty"`
}

func newSessionCache(max int, path string, state audit.StateStore, now func() time.Time, log *slog.Logger) (*sessionCache, error) {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	c := &sessionCache{max: max, ll: list.New(), byKey: map[string]*list.Element{}, path: path, now: now, log: log, state: state}
	if state != nil {
		c.path = ""
		return c, nil
	}
	if path == "" {
		return c, nil
	}
	if err := atomicfile.CleanTemp(path); err != nil { // a compaction a crash interrupted
		log.Warn("gateway sessions: temporary files left", "file", path, "err", err)
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	if err := c.compact(); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the file: later lines win, expired sessions are skipped, a
// damaged line (a crash mid-write) is skipped and logged.
func (c *sessionCache) load() error {
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gateway sessions: %w", err)
	}
	defer f.Close()
	now := c.now()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	bad := 0
	for sc.Scan() {
		var l sessionLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.AccessKeyID == "" {
			bad++
			continue
		}
		if !l.Expires.After(now) {
			continue
		}
		c.putLocked(l.AccessKeyID, l.session())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("gateway sessions: %s: %w", c.path, err)
	}
	if bad > 0 {
		c.log.Warn("gateway sessions: damaged lines skipped", "file", c.path, "lines", bad)
	}
	return nil
}

// compact rewrites the file with the live sessions, least recent first,
// and reopens it for appending.
func (c *sessionCache) compact() error {
	if c.file != nil {
		c.file.Close()
		c.file = nil
	}
	n := 0
	now := c.now()
	err := atomicfile.WriteFunc(c.path, 0o600, func(w io.Writer) error {
		for e := c.ll.Back(); e != nil; e = e.Prev() {
			se := e.Value.(*sessionEntry)
			if !se.s.expires.After(now) {
				continue
			}
			b, _ := json.Marshal(lineOf(se.key, se.s))
			if _, err := w.Write(append(b, '\n')); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gateway sessions: %w", err)
	}
	c.file, err = os.OpenFile(c.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("gateway sessions: %w", err)
	}
	c.lines = n
	return nil
}

// get returns the live session of key, marking it used.
func (c *sessionCache) get(key string) (*session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok && c.state != nil {
		return c.getSharedLocked(key)
	}
	if !ok {
		return nil, false
	}
	se := e.Value.(*sessionEntry)
	if !se.s.expires.After(c.now()) {
		c.ll.Remove(e)
		delete(c.byKey, key)
		return nil, false
	}
	c.ll.MoveToFront(e)
	return se.s, true
}

// put remembers a session (and appends it to the file).
func (c *sessionCache) put(key string, s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, s)
	if c.state != nil {
		c.putSharedLocked(key, s)
		return
	}
	if c.file == nil {
		return
	}
	b, _ := json.Marshal(lineOf(key, s))
	_, err := c.file.Write(append(b, '\n'))
	if err == nil {
		err = c.file.Sync()
	}
	c.lines++
	if err == nil && c.lines > 2*c.ll.Len()+1024 {
		err = c.compact()
	}
	if err != nil {
		c.log.Error("gateway sessions: not persisted", "file", c.path, "err", err)
	}
}

func (c *sessionCache) putLocked(key string, s *session) {
	if e, ok := c.byKey[key]; ok {
		e.Value.(*sessionEntry).s = s
		c.ll.MoveToFront(e)
		return
	}
	c.byKey[key] = c.ll.PushFront(&sessionEntry{key: key, s: s})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.byKey, old.Value.(*sessionEntry).key)
	}
}

func (c *sessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

func (c *sessionCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file == nil {
		return nil
	}
	err := c.file.Close()
	c.file = nil
	return err
}

func lineOf(key string, s *session) sessionLine {
	l := sessionLine{AccessKeyID: key, Expires: s.expires.UTC(), Created: s.created, Account: s.account,
		RoleARN: s.roleARN, AssumedID: s.assumedID, ARN: s.arn, Federated: s.federated}
	if s.issuer.ARN != "" {
		l.Issuer = &struct {
			PrincipalID string `json:"principalId"`
			ARN         string `json:"arn"`
			AccountID   string `json:"accountId"`
			UserName    string `json:"userName"`
		}{s.issuer.PrincipalID, s.issuer.ARN, s.issuer.AccountID, s.issuer.UserName}
	}
	return l
}

func (l sessionLine) session() *session {
	s := &session{created: l.Created, account: l.Account, roleARN: l.RoleARN, assumedID: l.AssumedID,
		arn: l.ARN, federated: l.Federated, expires: l.Expires}
	if l.Issuer != nil {
		s.issuer = audit.Principal{PrincipalID: l.Issuer.PrincipalID, ARN: l.Issuer.ARN,
			AccountID: l.Issuer.AccountID, UserName: l.Issuer.UserName}
	}
	return s
}

// getSharedLocked looks for a session another node learnt. A key that
// cannot name state (hostile input) is no session.
func (c *sessionCache) getSharedLocked(key string) (*session, bool) {
	if !audit.ValidStateKey(key) {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, v, err := c.state.Get(ctx, sharedPrefix+key)
	if err != nil {
		c.log.Error("gateway sessions: reading the shared store", "err", err)
		return nil, false
	}
	var l sessionLine
	if v == 0 || json.Unmarshal(b, &l) != nil || l.AccessKeyID != key || !l.Expires.After(c.now()) {
		return nil, false
	}
	s := l.session()
	c.putLocked(key, s)
	return s, true
}

// putSharedLocked writes the session for every node (the latest learnt
// wins) and now and then sweeps the expired ones out of the store.
func (c *sessionCache) putSharedLocked(key string, s *session) {
	if !audit.ValidStateKey(key) {
		c.log.Warn("gateway sessions: an access key ID that cannot be shared; known to this node only")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _ := json.Marshal(lineOf(key, s))
	var err error
	for range 3 {
		var v int64
		if v, err = c.state.Version(ctx, sharedPrefix+key); err != nil {
			break
		}
		if _, err = c.state.Put(ctx, sharedPrefix+key, b, v); !errors.Is(err, audit.ErrStateConflict) {
			break
		}
	}
	if err != nil {
		c.log.Error("gateway sessions: not shared", "err", err)
		return
	}
	if c.puts++; c.puts < sweepEvery {
		return
	}
	c.puts = 0
	all, err := c.state.List(ctx, sharedPrefix)
	if err != nil {
		c.log.Warn("gateway sessions: sweeping the shared store", "err", err)
		return
	}
	now := c.now()
	for _, e := range all {
		var l sessionLine
		if json.Unmarshal(e.Value, &l) != nil || !l.Expires.After(now) {
			c.state.Delete(ctx, e.Key, e.Version) //nolint:errcheck // changed meanwhile: the next sweep
		}
	}
}
