// Package storetest is the conformance suite every audit.Store backend must
// pass, and a generator of realistic records for tests and benchmarks.
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Opener opens the store kept in dir. The suite may open a dir again after
// closing it, to check durability.
type Opener func(t *testing.T, dir string) audit.Store

// Gen makes deterministic, realistic records.
type Gen struct {
	rng  *rand.Rand
	base time.Time
	n    int
}

// NewGen returns a generator seeded with seed, writing times after base.
func NewGen(seed uint64, base time.Time) *Gen {
	return &Gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), base: base}
}

var (
	names   = []string{"GetObject", "PutObject", "ListBuckets", "AssumeRole", "DescribeInstances", "CreateUser", "Decrypt", "GetSecretValue", "StopLogging", "ConsoleLogin"}
	sources = []string{"s3.amazonaws.com", "sts.amazonaws.com", "ec2.amazonaws.com", "iam.amazonaws.com", "kms.amazonaws.com"}
	users   = []string{"alice", "bob", "carol", "dave"}
)

// Spec fixes some fields of a generated record; zero fields are random.
type Spec struct {
	Account, Region, EventID, EventName string
	Time                                time.Time
	Category                            audit.Category
	NoReadOnly                          bool
	Extra                               string // appended raw members, e.g. `,"x":"y"`
}

// Record returns one record. Raw and the index agree (built with Extract).
func (g *Gen) Record(s Spec) audit.Record {
	g.n++
	if s.Account == "" {
		s.Account = "111111111111"
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.EventID == "" {
		s.EventID = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", g.rng.Uint32(), g.rng.IntN(1<<16), g.rng.IntN(1<<12), g.rng.IntN(1<<12), g.rng.Uint64()&(1<<48-1))
	}
	if s.EventName == "" {
		s.EventName = names[g.rng.IntN(len(names))]
	}
	if s.Time.IsZero() {
		s.Time = g.base.Add(time.Duration(g.n)*time.Second + time.Duration(g.rng.IntN(3))*time.Second)
	}
	cat := "Management"
	mgmt := "true"
	switch s.Category {
	case audit.CategoryData:
		cat, mgmt = "Data", "false"
	case audit.CategoryInsight:
		cat = "Insight"
	}
	user := users[g.rng.IntN(len(users))]
	ro := ""
	if !s.NoReadOnly {
		ro = fmt.Sprintf(`,"readOnly":%v`, strings.HasPrefix(s.EventName, "Get") || strings.HasPrefix(s.EventName, "List") || strings.HasPrefix(s.EventName, "Describe"))
	}
	bucket := fmt.Sprintf("bucket-%d", g.rng.IntN(20))
	raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDA%s","arn":"arn:aws:iam::%s:user/%s","accountId":"%s","accessKeyId":"AKIA%s%04d","userName":"%s"},"eventTime":"%s","eventSource":"%s","eventName":"%s","awsRegion":"%s","sourceIPAddress":"203.0.113.%d","userAgent":"aws-cli/2.15.0 Python/3.11","requestParameters":{"bucketName":"%s","Host":"%s.s3.amazonaws.com"},"responseElements":null,"requestID":"%016X","eventID":"%s"%s,"resources":[{"accountId":"%s","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::%s"}],"eventType":"AwsApiCall","managementEvent":%s,"recipientAccountId":"%s","eventCategory":"%s"%s}`,
		strings.ToUpper(user), s.Account, user, s.Account, strings.ToUpper(user), g.rng.IntN(3), user,
		audit.FormatTime(s.Time), sources[g.rng.IntN(len(sources))], s.EventName, s.Region, g.rng.IntN(255),
		bucket, bucket, g.rng.Uint64(), s.EventID, ro, s.Account, bucket, mgmt, s.Account, cat, s.Extra)
	r, err := audit.Extract([]byte(raw))
	if err != nil {
		panic(fmt.Sprintf("storetest: generated an invalid record: %v\n%s", err, raw))
	}
	return r
}

// Records returns n records with default specs.
func (g *Gen) Records(n int) []audit.Record {
	out := make([]audit.Record, n)
	for i := range out {
		out[i] = g.Record(Spec{})
	}
	return out
}

// Run runs the conformance suite against the store open returns.
func Run(t *testing.T, open Opener) {
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	t.Run("Empty", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		p, err := st.Lookup(context.Background(), query("111111111111", 50))
		if err != nil || len(p.Records) != 0 || p.Next != nil {
			t.Errorf("Lookup on an empty store = %v, %v", p, err)
		}
	})
	t.Run("OrderTiesAndPaging", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(1, base)
		var recs []audit.Record
		for i := range 120 {
			// Many records share each second.
			recs = append(recs, g.Record(Spec{Time: base.Add(time.Duration(i/7) * time.Second)}))
		}
		mustAppend(t, st, recs)
		want := reference(recs, query("111111111111", 1000))
		for _, limit := range []int{1, 7, 50} {
			got := pageAll(t, st, query("111111111111", limit))
			if diff := cmp.Diff(ids(want), ids(got)); diff != "" {
				t.Errorf("limit %d: paging differs from the reference order (-want +got):\n%s", limit, diff)
			}
		}
		p, _ := st.Lookup(context.Background(), query("111111111111", 120))
		if p.Next != nil {
			t.Errorf("a page holding every record has Next = %v", p.Next)
		}
	})
	t.Run("Attributes", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(2, base)
		recs := g.Records(300)
		recs = append(recs, g.Record(Spec{NoReadOnly: true, EventName: "GetObject"}))
		mustAppend(t, st, recs)
		r0 := recs[17]
		cases := [][]audit.Attribute{
			{{Key: audit.AttrEventID, Value: r0.EventID}},
			{{Key: audit.AttrEventName, Value: "GetObject"}},
			{{Key: audit.AttrEventSource, Value: "kms.amazonaws.com"}},
			{{Key: audit.AttrReadOnly, Value: "true"}},
			{{Key: audit.AttrReadOnly, Value: "false"}},
			{{Key: audit.AttrUsername, Value: "carol"}},
			{{Key: audit.AttrAccessKeyID, Value: r0.AccessKeyID}},
			{{Key: audit.AttrResourceType, Value: "AWS::S3::Bucket"}},
			{{Key: audit.AttrResourceName, Value: r0.Resources[0].Name}},
			{{Key: audit.AttrResourceName, Value: r0.Resources[0].ARN}},
			{{Key: audit.AttrEventName, Value: "GetObject"}, {Key: audit.AttrUsername, Value: "bob"}, {Key: audit.AttrReadOnly, Value: "true"}},
			{{Key: audit.AttrEventName, Value: "GetObject"}, {Key: audit.AttrEventName, Value: "PutObject"}},
			{{Key: audit.AttrEventName, Value: "getobject"}},
			{{Key: audit.AttrUsername, Value: ""}},
			{{Key: audit.AttrAccessKeyID, Value: ""}},
		}
		for _, attrs := range cases {
			q := query("111111111111", 50)
			q.Attributes = attrs
			want, got := reference(recs, q), pageAll(t, st, q)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v: (-want +got):\n%s", attrs, diff)
			}
		}
	})
	t.Run("IsolationAndTimeBounds", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(3, base)
		var recs []audit.Record
		for i := range 200 {
			s := Spec{Account: []string{"111111111111", "222222222222"}[i%2], Region: []string{"us-east-1", "eu-west-1"}[i/2%2]}
			switch i % 5 {
			case 3:
				s.Category = audit.CategoryData
			case 4:
				s.Category = audit.CategoryInsight
			}
			recs = append(recs, g.Record(s))
		}
		// The same eventID in another account is another record.
		recs = append(recs, g.Record(Spec{Account: "222222222222", EventID: recs[0].EventID}))
		mustAppend(t, st, recs)
		for _, acct := range []string{"111111111111", "222222222222", "333333333333"} {
			for _, region := range []string{"us-east-1", "eu-west-1"} {
				for _, cat := range []audit.Category{audit.CategoryManagement, audit.CategoryData, audit.CategoryInsight} {
					q := query(acct, 13)
					q.Region, q.Category = region, cat
					q.Start, q.End = recs[40].Time, recs[160].Time // inclusive bounds
					if diff := cmp.Diff(reference(recs, q), pageAll(t, st, q)); diff != "" {
						t.Errorf("%s/%s/%v: (-want +got):\n%s", acct, region, cat, diff)
					}
				}
			}
		}
	})
	t.Run("Idempotent", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(4, base)
		recs := g.Records(50)
		dup := recs[3]
		dup.Raw = []byte(strings.Replace(string(dup.Raw), `"userAgent":"`, `"userAgent":"second copy `, 1))
		res, err := st.Append(context.Background(), append(slices.Clone(recs), dup))
		if err != nil || res.Inserted != 50 || res.Duplicates != 1 {
			t.Fatalf("Append = %+v, %v; want 50 inserted, 1 duplicate", res, err)
		}
		res, err = st.Append(context.Background(), recs[:20])
		if err != nil || res.Inserted != 0 || res.Duplicates != 20 {
			t.Errorf("Append again = %+v, %v; want 20 duplicates", res, err)
		}
		q := query("111111111111", 50)
		q.Attributes = []audit.Attribute{{Key: audit.AttrEventID, Value: dup.EventID}}
		p, _ := st.Lookup(context.Background(), q)
		if len(p.Records) != 1 || string(p.Records[0].Raw) != string(recs[3].Raw) {
			t.Errorf("the first copy was not kept: %v", p.Records)
		}
	})
	t.Run("RawBytesExact", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		raws := []string{
			"{\n  \"eventID\": \"a\",\n\t\"eventTime\": \"2024-03-01T00:00:00Z\", \"awsRegion\":\"us-east-1\",\"recipientAccountId\":\"111111111111\",\"eventName\":\"Ünïcødé ✓\",\"x\":\"\\u00e9\\n\\\"\"}  ",
			`{"eventID":"b","eventTime":"2024-03-01T00:00:01Z","awsRegion":"us-east-1","recipientAccountId":"111111111111","requestParameters":{"big":"` + strings.Repeat("x", 200000) + `"}}`,
		}
		var recs []audit.Record
		for _, raw := range raws {
			r, err := audit.Extract([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		mustAppend(t, st, recs)
		got := pageAll(t, st, query("111111111111", 50))
		if len(got) != 2 || string(got[1].Raw) != raws[0] || string(got[0].Raw) != raws[1] {
			t.Errorf("raw bytes changed")
		}
	})
	t.Run("DeleteBefore", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		recs := NewGen(5, base).Records(100)
		mustAppend(t, st, recs)
		n, err := st.DeleteBefore(context.Background(), recs[60].Time)
		want := 0
		for _, r := range recs {
			if r.Time.Before(recs[60].Time) {
				want++
			}
		}
		if err != nil || n != int64(want) {
			t.Errorf("DeleteBefore = %d, %v; want %d", n, err, want)
		}
		got := pageAll(t, st, query("111111111111", 50))
		if len(got) != 100-want {
			t.Errorf("%d records left; want %d", len(got), 100-want)
		}
	})
	t.Run("Durable", func(t *testing.T) {
		dir := t.TempDir()
		st := open(t, dir)
		recs := NewGen(6, base).Records(100)
		mustAppend(t, st, recs)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st = open(t, dir)
		defer st.Close()
		q := query("111111111111", 50)
		if diff := cmp.Diff(reference(recs, q), pageAll(t, st, q)); diff != "" {
			t.Errorf("after reopening (-want +got):\n%s", diff)
		}
		if res, _ := st.Append(context.Background(), recs[:10]); res.Duplicates != 10 {
			t.Errorf("after reopening, re-appending gave %+v; want 10 duplicates", res)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(7, base)
		batches := make([][]audit.Record, 8)
		for i := range batches {
			batches[i] = g.Records(50)
		}
		var wg sync.WaitGroup
		for _, b := range batches {
			wg.Go(func() {
				if _, err := st.Append(context.Background(), b); err != nil {
					t.Errorf("Append: %v", err)
				}
			})
			wg.Go(func() {
				if _, err := st.Lookup(context.Background(), query("111111111111", 10)); err != nil {
					t.Errorf("Lookup: %v", err)
				}
			})
		}
		wg.Wait()
		if got := pageAll(t, st, query("111111111111", 50)); len(got) != 400 {
			t.Errorf("%d records after concurrent appends; want 400", len(got))
		}
	})
}

func query(acct string, limit int) audit.Query {
	return audit.Query{Account: acct, Region: "us-east-1", Category: audit.CategoryManagement, Limit: limit}
}

func mustAppend(t *testing.T, st audit.Store, recs []audit.Record) {
	t.Helper()
	res, err := st.Append(context.Background(), recs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if res.Inserted+res.Duplicates != len(recs) {
		t.Fatalf("Append = %+v for %d records", res, len(recs))
	}
}

// reference answers q over recs by the domain's definition.
func reference(recs []audit.Record, q audit.Query) []audit.Record {
	var out []audit.Record
	seen := map[string]bool{}
	for _, r := range recs {
		k := r.Account + "\x00" + r.EventID
		if seen[k] {
			continue
		}
		seen[k] = true
		if q.Matches(&r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b audit.Record) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.EventID, a.EventID)
	})
	return out
}

func pageAll(t *testing.T, st audit.Store, q audit.Query) []audit.Record {
	t.Helper()
	var all []audit.Record
	for i := 0; ; i++ {
		p, err := st.Lookup(context.Background(), q)
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		if len(p.Records) > q.Limit {
			t.Fatalf("Lookup returned %d records; limit %d", len(p.Records), q.Limit)
		}
		all = append(all, p.Records...)
		if p.Next == nil {
			return all
		}
		if i > 10000 {
			t.Fatal("paging does not end")
		}
		q.After = p.Next
	}
}

func ids(rs []audit.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.EventID
	}
	return out
}
