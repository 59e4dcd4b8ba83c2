package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// sharedPrefix is where sessions live in a shared StateStore: one key a
// session, named by the SHA-256 of its cookie's token (never the token).
const sharedPrefix = "console-sessions/"

// stateTimeout bounds each call to the shared store.
const stateTimeout = 5 * time.Second

// sharedSession is a session as the shared store keeps it.
type sharedSession struct {
	storedSession
	version int64
}

// putShared writes ss as a new key and, past the cap, ends the expired
// sessions and then the least recently used ones of every node.
func (s *sessions) putShared(ss *session) error {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	b, err := json.Marshal(storedSession{Key: ss.key, AccessKeyID: ss.Principal.AccessKeyID, Region: ss.Principal.Region,
		Created: ss.created, Seen: ss.seen})
	if err != nil {
		return err
	}
	v, err := s.state.Put(ctx, sharedPrefix+ss.key, b, 0)
	if err != nil {
		return fmt.Errorf("console: save session: %w", err)
	}
	s.mu.Lock()
	ss.saved, ss.version = ss.seen, v
	s.mu.Unlock()
	return s.trimShared(ctx)
}

// trimShared keeps at most cap sessions in the shared store.
func (s *sessions) trimShared(ctx context.Context) error {
	all, err := s.state.List(ctx, sharedPrefix)
	if err != nil || len(all) <= s.cap {
		return err
	}
	now := s.now()
	var live []sharedSession
	for _, e := range all {
		var st storedSession
		if json.Unmarshal(e.Value, &st) != nil || s.expired(&session{created: st.Created, seen: st.Seen}, now) {
			s.state.Delete(ctx, e.Key, e.Version) //nolint:errcheck // changed meanwhile: the next trim
			continue
		}
		live = append(live, sharedSession{storedSession: st, version: e.Version})
	}
	for len(live) > s.cap {
		lru := 0
		for i := range live {
			if live[i].Seen.Before(live[lru].Seen) {
				lru = i
			}
		}
		s.state.Delete(ctx, sharedPrefix+live[lru].Key, live[lru].version) //nolint:errcheck // as above
		live = append(live[:lru], live[lru+1:]...)
	}
	return nil
}

// getShared returns the live session key names, read from the shared
// store on every request (a sign-out or expiry on another node ends it
// here too), marking it used (written when saveEvery past the store's).
func (s *sessions) getShared(key, token string, now time.Time) (*session, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	b, v, err := s.state.Get(ctx, sharedPrefix+key)
	if err != nil {
		s.log.Error("console: reading the session from the shared store failed", "err", err)
		return nil, false
	}
	var st storedSession
	if v == 0 || json.Unmarshal(b, &st) != nil || st.Key != key {
		s.mu.Lock()
		delete(s.m, key)
		s.mu.Unlock()
		return nil, false
	}
	p, ok := s.keys.Principal(st.AccessKeyID)
	if _, known := s.keys.Secret(st.AccessKeyID); !ok || !known || p.AccountID == "" || !audit.ValidRegion(st.Region) {
		return nil, false // a key taken out of the config ends its sessions
	}
	p.Region = st.Region
	s.mu.Lock()
	ss, held := s.m[key]
	if !held || ss.version != v {
		fresh := &session{key: key, Principal: p, CSRF: csrfOf(token), created: st.Created, seen: st.Seen, saved: st.Seen, version: v}
		if held && ss.seen.After(st.Seen) {
			fresh.seen = ss.seen
		}
		ss = fresh
		s.m[key] = ss
	}
	if s.expired(ss, now) {
		delete(s.m, key)
		s.mu.Unlock()
		s.state.Delete(ctx, sharedPrefix+key, v) //nolint:errcheck // changed meanwhile: trimmed later
		return nil, false
	}
	ss.seen = now
	due := now.Sub(ss.saved) >= saveEvery
	s.mu.Unlock()
	if due {
		st.Seen = now
		b, _ := json.Marshal(st)
		nv, err := s.state.Put(ctx, sharedPrefix+key, b, v)
		switch {
		case err == nil:
			s.mu.Lock()
			ss.saved, ss.version = now, nv
			s.mu.Unlock()
		case errors.Is(err, audit.ErrStateConflict):
			// Another node used or ended it meanwhile: its write stands.
		default:
			s.log.Error("console: saving the session's last use failed", "err", err)
		}
	}
	return ss, true
}

// deleteShared ends the session key on every node.
func (s *sessions) deleteShared(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	for range 5 {
		v, err := s.state.Version(ctx, sharedPrefix+key)
		if err != nil {
			return fmt.Errorf("console: end session: %w", err)
		}
		err = s.state.Delete(ctx, sharedPrefix+key, v)
		if !errors.Is(err, audit.ErrStateConflict) {
			return err
		}
	}
	return errors.New("console: end session: changed by others meanwhile")
}
