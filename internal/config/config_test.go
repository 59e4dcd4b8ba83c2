package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.bad.err golden files")

// TestBadFiles loads every testdata/*.bad.yaml and compares the error with
// the sibling .bad.err file.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil || len(files) < 30 {
		t.Fatalf("found %d bad files (%v); want at least 30", len(files), err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".bad.yaml"), func(t *testing.T) {
			c, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, nil; want an error", f, c)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Load(%s) error is %T; want a non-empty ErrorList", f, err)
			}
			for _, e := range list {
				if e.File != f {
					t.Errorf("error %q names file %q; want %q", e, e.File, f)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (go test -run TestBadFiles -update): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Load(%s) error mismatch (-want +got):\n%s", f, diff)
			}
		})
	}
}

// TestErrorsNeverShowSecrets checks that no message quotes a secret back.
func TestErrorsNeverShowSecrets(t *testing.T) {
	const secret = "s3cr3t-VALUE-do-not-log"
	for _, yaml := range []string{
		"accounts:\n  - id: \"1\"\n    users:\n      - name: a\n        access_keys:\n          - id: AKIAAAAAAAAAAAAAAAAA\n            secret: " + secret + "\n",
		"accounts:\n  - id: \"111111111111\"\n    users:\n      - name: \"a b\"\n        access_keys:\n          - id: x\n            secret: " + secret + "\n            extra: 1\n",
	} {
		_, err := Parse("c.yaml", []byte(yaml))
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Parse error = %v; want an error without the secret", err)
		}
	}
}

func TestGoodFiles(t *testing.T) {
	tests := []struct {
		file string
		want Config
	}{
		{"testdata/readme.yaml", Config{
			EventHistory: EventHistory{RetentionDays: 90, RecordBlockKiB: DefaultRecordBlockKiB, MemoryLimit: DefaultEventHistoryMemoryLimit, Threads: DefaultEventHistoryThreads},
			Accounts: []Account{{ID: "111111111111", Users: []User{{Name: "alice",
				AccessKeys: []AccessKey{{ID: "AKIAALICE00000000001", Secret: "alice-secret-key"}}},
				{Name: "ir", Responder: true, AccessKeys: []AccessKey{{ID: "AKIARESPONDER0000001", Secret: "responder-secret-key"}}}}}},
		}},
		{"testdata/good.yaml", Config{
			EventHistory: EventHistory{RetentionDays: 0, RecordBlockKiB: 0, MemoryLimit: "2GB", Threads: DefaultEventHistoryThreads},
			Accounts: []Account{{ID: "111111111111", Users: []User{
				{Name: "alice", AccessKeys: []AccessKey{{ID: "AKIAALICE00000000001", Secret: "alice-secret-key"}}},
				{Name: "bob", AccessKeys: []AccessKey{}},
			}}},
		}},
		{"testdata/several.yaml", Config{
			EventHistory: EventHistory{RetentionDays: DefaultRetentionDays, RecordBlockKiB: DefaultRecordBlockKiB, MemoryLimit: DefaultEventHistoryMemoryLimit, Threads: DefaultEventHistoryThreads},
			Accounts: []Account{
				{ID: "111111111111", Users: []User{
					{Name: "alice", AccessKeys: []AccessKey{
						{ID: "AKIAALICE00000000001", Secret: "alice-secret-key"},
						{ID: "AKIAALICE00000000002", Secret: "alice's second key"},
					}},
					{Name: "ci+deploy=prod,eu.1@example-team_x"},
					{Name: "ir", Responder: true, AccessKeys: []AccessKey{{ID: "AKIARESPONDER0000001", Secret: "responder-secret"}}},
				}},
				{ID: "222222222222", Users: []User{
					{Name: "alice", AccessKeys: []AccessKey{{ID: "AKIA2ALICE0000000001", Secret: "other-alice"}}},
				}},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			got, err := Load(tt.file)
			if err != nil {
				t.Fatalf("Load(%s): %v", tt.file, err)
			}
			if diff := cmp.Diff(&tt.want, got, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateEmpty(), cmpopts.IgnoreFields(Config{}, "Delivery", "Trails", "Insights", "Lake", "API", "Ingest", "Console")); diff != "" {
				t.Errorf("Load(%s) mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

func TestParseSmallCases(t *testing.T) {
	const key = "\n    users:\n      - name: a\n        access_keys:\n          - id: AKIAAAAAAAAAAAAAAAAA\n            secret: s\n"
	tests := []struct {
		name, yaml string
		retention  time.Duration
	}{
		{"default retention", "accounts:\n  - id: \"111111111111\"" + key, 90 * 24 * time.Hour},
		{"empty event_history", "event_history:\naccounts:\n  - id: \"111111111111\"" + key, 90 * 24 * time.Hour},
		{"forever", "event_history: {retention_days: 0}\naccounts:\n  - id: \"111111111111\"" + key, 0},
		{"max", "event_history: {retention_days: 36500}\naccounts:\n  - id: \"111111111111\"" + key, 36500 * 24 * time.Hour},
		{"yaml int forms", "event_history: {retention_days: 0x10}\naccounts:\n  - id: \"111111111111\"" + key, 16 * 24 * time.Hour},
		{"flow style", `{"accounts": [{"id": "111111111111", "users": [{"name": "a", "access_keys": [{"id": "AKIAAAAAAAAAAAAAAAAA", "secret": "s"}]}]}]}`, 90 * 24 * time.Hour},
		{"leading-zero account, unquoted", "accounts:\n  - id: 011111111111" + key, 90 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.Retention(); got != tt.retention {
				t.Errorf("Retention() = %v; want %v", got, tt.retention)
			}
			if _, ok := c.Principal("AKIAAAAAAAAAAAAAAAAA"); !ok {
				t.Errorf("Principal(AKIAAAAAAAAAAAAAAAAA) not found")
			}
		})
	}
}

func TestPrincipal(t *testing.T) {
	c, err := Load("testdata/several.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want Principal
		ok   bool
	}{
		{"AKIAALICE00000000002", Principal{
			AccessKeyID: "AKIAALICE00000000002", Secret: "alice's second key", AccountID: "111111111111", UserName: "alice",
			ARN: "arn:aws:iam::111111111111:user/alice", PrincipalID: principalID("111111111111", "alice"),
		}, true},
		{"AKIA2ALICE0000000001", Principal{
			AccessKeyID: "AKIA2ALICE0000000001", Secret: "other-alice", AccountID: "222222222222", UserName: "alice",
			ARN: "arn:aws:iam::222222222222:user/alice", PrincipalID: principalID("222222222222", "alice"),
		}, true},
		{"AKIARESPONDER0000001", Principal{
			AccessKeyID: "AKIARESPONDER0000001", Secret: "responder-secret", AccountID: "111111111111", UserName: "ir",
			ARN: "arn:aws:iam::111111111111:user/ir", PrincipalID: principalID("111111111111", "ir"), Responder: true,
		}, true},
		{"AKIANOBODY0000000000", Principal{}, false},
		{"", Principal{}, false},
		{"akiaalice00000000001", Principal{}, false},
	}
	for _, tt := range tests {
		got, ok := c.Principal(tt.key)
		if ok != tt.ok || got != tt.want {
			t.Errorf("Principal(%q) = %+v, %v; want %+v, %v", tt.key, got, ok, tt.want, tt.ok)
		}
		secret, ok := c.Secret(tt.key)
		if ok != tt.ok || secret != tt.want.Secret {
			t.Errorf("Secret(%q) = %q, %v; want %q, %v", tt.key, secret, ok, tt.want.Secret, tt.ok)
		}
	}
	if id, secret, ok := c.FirstKey(); id != "AKIAALICE00000000001" || secret != "alice-secret-key" || !ok {
		t.Errorf("FirstKey() = %q, %q, %v; want the file's first key", id, secret, ok)
	}
	var zero Config
	if _, ok := zero.Principal("AKIAALICE00000000001"); ok {
		t.Error("zero Config found a key")
	}
	if _, _, ok := zero.FirstKey(); ok {
		t.Error("zero Config has a first key")
	}
}

// TestPrincipalIDIsStable pins the derivation: records already stored
// carry these IDs, so a change would split one user's history in two.
func TestPrincipalIDIsStable(t *testing.T) {
	shape := regexp.MustCompile(`^AIDA[A-Z2-7]{17}$`)
	tests := []struct{ account, user, want string }{
		{"111111111111", "alice", "AIDAS5ZLXKDCMDPIKSAUR"},
		{"222222222222", "alice", "AIDAGQJYE45TTZL7RJWDZ"},
		{"111111111111", "bob", "AIDANUUFGIM4ZL2XAP4NN"},
	}
	for _, tt := range tests {
		got := principalID(tt.account, tt.user)
		if got != tt.want || !shape.MatchString(got) {
			t.Errorf("principalID(%q, %q) = %q; want %q", tt.account, tt.user, got, tt.want)
		}
	}
}

func TestErrorList(t *testing.T) {
	_, err := Load("testdata/many-mistakes.bad.yaml")
	var first *Error
	if !errors.As(err, &first) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	if first.Line != 2 || first.Path != "accounts[0].id" {
		t.Errorf("first error = %+v; want line 2, accounts[0].id", first)
	}
	var list ErrorList
	if errors.As(err, &list); len(list) != maxErrors+1 {
		t.Errorf("got %d errors; want %d and a count of the rest", len(list), maxErrors+1)
	}
	_, err = Load("testdata/no-such-file.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing file) = %v; want os.ErrNotExist", err)
	}
}

func TestUnknownKeySuggestions(t *testing.T) {
	fields := []field{{name: "retention_days"}, {name: "access_keys"}, {name: "id"}, {name: "users"}}
	tests := []struct{ key, want string }{
		{"retention_dayz", "did you mean retention_days?"},
		{"RetentionDays", "did you mean retention_days?"},
		{"accessKeys", "did you mean access_keys?"},
		{"access-key", "did you mean access_keys?"},
		{"user", "did you mean users?"},
		{"ID", "did you mean id?"},
		{"xy", "x has: retention_days, access_keys, id, users"},
		{"secret_access_key", "x has: retention_days, access_keys, id, users"},
		{strings.Repeat("a", 10000), "x has:"},
	}
	for _, tt := range tests {
		k := mustKey(t, tt.key)
		if got := unknownKey(k, "x", fields); !strings.Contains(got, tt.want) {
			t.Errorf("unknownKey(%.20q) = %q; want it to contain %q", tt.key, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"users", "user", 1}, {"ab", "ba", 2},
	}
	for _, tt := range tests {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// FuzzParse checks that Parse never panics, that every error names the
// file, and that an accepted config is consistent with its lookups.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("{accounts: [{id: '111111111111', users: [{name: a, access_keys: [{id: AKIAAAAAAAAAAAAAAAAA, secret: s}]}]}]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yaml", b)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > maxErrors+1 {
				t.Fatalf("Parse error %T with %d entries; want an ErrorList of 1 to %d", err, len(list), maxErrors+1)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Msg == "" || e.Line < 0 {
					t.Fatalf("malformed error %+v", e)
				}
			}
			return
		}
		if r := c.Retention(); r < 0 || r > MaxRetentionDays*24*time.Hour {
			t.Errorf("Retention() = %v; out of range", r)
		}
		if _, _, ok := c.FirstKey(); !ok {
			t.Error("accepted a config without an access key")
		}
		for _, a := range c.Accounts {
			for _, u := range a.Users {
				for _, k := range u.AccessKeys {
					p, ok := c.Principal(k.ID)
					if !ok || p.AccountID != a.ID || p.UserName != u.Name || p.Secret != k.Secret || k.Secret == "" {
						t.Errorf("Principal(%q) = %+v, %v; want account %q user %q", k.ID, p, ok, a.ID, u.Name)
					}
				}
			}
		}
	})
}

func mustKey(t *testing.T, s string) *yaml.Node {
	t.Helper()
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func TestTrailSections(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	c, err := Parse("c.yaml", []byte(head+`buckets:
  - name: audit-logs
    s3: {endpoint: "http://127.0.0.1:5000", region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
  - name: local-logs
    local_dir: ./trail-logs
delivery:
  interval: 1s
  digest_interval: 3s
trails:
  max_per_region: 7
organization:
  id: o-a1b2c3d4e5
  management_account: "111111111111"
  member_accounts: ["222222222222"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Buckets) != 2 || c.Buckets[0].S3 == nil || !c.Buckets[0].S3.PathStyle || c.Buckets[1].LocalDir != "./trail-logs" ||
		c.Delivery.Interval != time.Second || c.Delivery.DigestInterval != 3*time.Second || c.Trails.MaxPerRegion != 7 {
		t.Errorf("decoded %+v %+v %+v", c.Buckets, c.Delivery, c.Trails)
	}
	if o := c.Organization; o == nil || o.ID != "o-a1b2c3d4e5" || o.ManagementAccount != "111111111111" || len(o.MemberAccounts) != 1 {
		t.Errorf("organization: %+v", o)
	}
	d, err := Parse("c.yaml", []byte(head))
	if err != nil || d.Delivery.Interval != DefaultDeliveryInterval || d.Trails.MaxPerRegion != DefaultMaxTrails {
		t.Errorf("defaults: %+v %+v %v", d.Delivery, d.Trails, err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"buckets:\n  - name: Bad_Name\n    local_dir: x\n", "c.yaml:8: buckets[0].name: \"Bad_Name\" is not a valid S3 bucket name"},
		{"organization:\n  id: org-1\n  management_account: \"111111111111\"\n", "c.yaml:8: organization.id: \"org-1\" is not an organization ID"},
		{"organization:\n  id: o-abcdefghij\n", "c.yaml:8: organization.management_account: required, but missing"},
		{"organization:\n  id: o-abcdefghij\n  management_account: \"111111111111\"\n  member_accounts: [\"111111111111\"]\n", "c.yaml:10: organization.member_accounts[0]: account 111111111111 is already in the organization (line 9)"},
		{"organization:\n  id: o-abcdefghij\n  management_account: \"11\"\n", "c.yaml:9: organization.management_account: \"11\" is not a 12-digit account ID"},
		{"buckets:\n  - name: b1b\n", "c.yaml:8: buckets[0]: a bucket needs exactly one of s3 and local_dir"},
		{"buckets:\n  - {name: b1b, local_dir: x}\n  - {name: b1b, local_dir: y}\n", "bucket \"b1b\" is configured twice (first on line 8)"},
		{"buckets:\n  - name: b1b\n    s3: {endpoint: \"ftp://x\"}\n", "c.yaml:9: buckets[0].s3.endpoint: \"ftp://x\" is not an http(s) URL"},
		{"buckets:\n  - name: b1b\n    s3: {path_style: yes please}\n", "buckets[0].s3.path_style: want true or false"},
		{"delivery:\n  interval: 0s\n", "c.yaml:8: delivery.interval: want a duration from 1s to 24h0m0s"},
		{"trails:\n  max_per_region: 0\n", "c.yaml:8: trails.max_per_region: want a whole number of trails from 1 to 1000"},
	} {
		_, err := Parse("c.yaml", []byte(head+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v; want it to contain %q", c.yaml, err, c.want)
		}
	}
}
