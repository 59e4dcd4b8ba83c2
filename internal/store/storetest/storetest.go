// Package storetest is the conformance suite every audit.Store backend must
// pass, and a generator of realistic records for tests and benchmarks.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Opener opens the store kept in dir. The suite may open a dir again after
// closing it, to check durability.
type Opener func(t *testing.T, dir string) audit.Store

// Gen makes deterministic, realistic records: each is an audit.Event of
// one of a few common shapes (an IAM user reading S3, an assumed role
// decrypting with KMS, a console sign-in without readOnly, a service event
// without a caller, an Insight), marshalled and indexed with audit.Extract,
// so Raw and the index always agree.
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
	names = []string{"GetObject", "PutObject", "ListBuckets", "AssumeRole", "DescribeInstances", "CreateUser",
		"Decrypt", "GetSecretValue", "StopLogging", "ConsoleLogin"}
	sources = map[string]string{"GetObject": "s3.amazonaws.com", "PutObject": "s3.amazonaws.com",
		"ListBuckets": "s3.amazonaws.com", "AssumeRole": "sts.amazonaws.com", "DescribeInstances": "ec2.amazonaws.com",
		"CreateUser": "iam.amazonaws.com", "Decrypt": "kms.amazonaws.com", "GetSecretValue": "secretsmanager.amazonaws.com",
		"StopLogging": "cloudtrail.amazonaws.com", "ConsoleLogin": "signin.amazonaws.com"}
	users = []string{"alice", "bob", "carol", "dave"}
)

// Spec fixes some fields of a generated record; zero fields are random.
type Spec struct {
	Account, Region, EventID, EventName string
	Time                                time.Time
	Category                            audit.Category
	// NoReadOnly leaves readOnly out of the record.
	NoReadOnly bool
	// Service makes an AwsServiceEvent without a caller: no Username and
	// no AccessKeyId.
	Service bool
	// AccessKeyID and Bucket replace the random caller key and bucket.
	AccessKeyID, Bucket string
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
	if s.Bucket == "" {
		s.Bucket = fmt.Sprintf("bucket-%d", g.rng.IntN(20))
	}
	user := users[g.rng.IntN(len(users))]
	if s.AccessKeyID == "" {
		s.AccessKeyID = fmt.Sprintf("AKIA%s%04d", strings.ToUpper(user), g.rng.IntN(3))
	}
	src := sources[s.EventName]
	if src == "" {
		src = "example.amazonaws.com"
	}
	e := audit.Event{
		EventVersion: "1.08",
		EventTime:    audit.FormatTime(s.Time),
		EventSource:  src,
		EventName:    s.EventName,
		AWSRegion:    s.Region,
		RequestID:    fmt.Sprintf("%016X", g.rng.Uint64()),
		EventID:      s.EventID,
		EventType:    "AwsApiCall",
		// Odd but valid bytes: escapes and non-ASCII survive the store.
		UserAgent:          fmt.Sprintf("aws-cli/2.15.%d Python/3.11 \u00e9 ✓", g.rng.IntN(30)),
		SourceIPAddress:    fmt.Sprintf("203.0.113.%d", g.rng.IntN(255)),
		RequestParameters:  json.RawMessage(fmt.Sprintf(`{"bucketName":%q,"Host":"%s.s3.amazonaws.com"}`, s.Bucket, s.Bucket)),
		ResponseElements:   json.RawMessage("null"),
		RecipientAccountID: s.Account,
		EventCategory:      "Management",
		Resources: []audit.EventResource{
			{AccountID: s.Account, Type: "AWS::S3::Bucket", ARN: "arn:aws:s3:::" + s.Bucket},
		},
	}
	switch {
	case s.Service:
		e.EventType = "AwsServiceEvent"
		e.UserIdentity = &audit.UserIdentity{AccountID: s.Account, InvokedBy: src}
	case g.rng.IntN(4) == 0:
		role := []string{"deployer", "reader"}[g.rng.IntN(2)]
		e.UserIdentity = &audit.UserIdentity{Type: "AssumedRole", PrincipalID: "AROAEXAMPLE:" + user,
			ARN: fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", s.Account, role, user), AccountID: s.Account,
			AccessKeyID: "ASIA" + s.AccessKeyID[4:]}
		e.Resources = append(e.Resources, audit.EventResource{AccountID: s.Account, Type: "AWS::KMS::Key",
			ARN: fmt.Sprintf("arn:aws:kms:%s:%s:key/%04d", s.Region, s.Account, g.rng.IntN(5))})
	default:
		e.UserIdentity = &audit.UserIdentity{Type: "IAMUser", PrincipalID: "AIDA" + strings.ToUpper(user),
			ARN: fmt.Sprintf("arn:aws:iam::%s:user/%s", s.Account, user), AccountID: s.Account,
			AccessKeyID: s.AccessKeyID, UserName: user}
	}
	if !s.NoReadOnly && s.EventName != "ConsoleLogin" {
		ro := strings.HasPrefix(s.EventName, "Get") || strings.HasPrefix(s.EventName, "List") || strings.HasPrefix(s.EventName, "Describe")
		e.ReadOnly = &ro
	}
	mgmt := true
	switch s.Category {
	case audit.CategoryData:
		mgmt = false
		e.EventCategory = "Data"
	case audit.CategoryInsight:
		e.EventType = "AwsCloudTrailInsight"
		e.EventCategory = "Insight"
		e.InsightDetails = &audit.InsightDetails{State: "Start", EventSource: src, EventName: s.EventName, InsightType: "ApiCallRateInsight"}
		e.UserIdentity, e.Resources, e.ReadOnly = nil, nil, nil
	}
	e.ManagementEvent = &mgmt
	raw, err := e.Marshal()
	if err != nil {
		panic(fmt.Sprintf("storetest: marshal a generated event: %v", err))
	}
	r, err := audit.Extract(raw)
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
		for _, limit := range []int{1, 3, 5, 7, 50} {
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
		recs = append(recs, g.Record(Spec{NoReadOnly: true, EventName: "GetObject"}),
			g.Record(Spec{Service: true, EventName: "GetObject"}), g.Record(Spec{Service: true, NoReadOnly: true}))
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
			{{Key: audit.AttrResourceType, Value: ""}},
			{{Key: audit.AttrResourceName, Value: ""}},
			{{Key: audit.AttrReadOnly, Value: ""}},
			{{Key: audit.AttrReadOnly, Value: "TRUE"}},
			{{Key: audit.AttrEventName, Value: "' OR '1'='1"}},
			{{Key: audit.AttrEventName, Value: "GetObject\x00"}},
			{{Key: "NoSuchKey", Value: "GetObject"}},
			{{Key: audit.AttrResourceType, Value: "AWS::KMS::Key"}, {Key: audit.AttrUsername, Value: "alice"}},
			{{Key: audit.AttrResourceName, Value: "arn:aws:kms:us-east-1:111111111111:key/0003"}},
			{{Key: audit.AttrResourceName, Value: "0003"}},
		}
		for i, attrs := range cases {
			q := query("111111111111", 7)
			q.Attributes = attrs
			want, got := reference(recs, q), pageAll(t, st, q)
			if i < 11 && len(want) == 0 {
				t.Fatalf("%v: the generator made no matching record; the case tests nothing", attrs)
			}
			if diff := diffRecords(want, got); diff != "" {
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
					if diff := diffRecords(reference(recs, q), pageAll(t, st, q)); diff != "" {
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
		// New and stored records mixed; the same eventID in another account
		// is another record, in the same batch too.
		other := g.Record(Spec{Account: "222222222222", EventID: recs[5].EventID})
		res, err = st.Append(context.Background(), []audit.Record{recs[5], g.Record(Spec{}), other, other, recs[6]})
		if err != nil || res.Inserted != 2 || res.Duplicates != 3 {
			t.Errorf("Append mixed = %+v, %v; want 2 inserted, 3 duplicates", res, err)
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
	t.Run("DeleteReceivedBefore", func(t *testing.T) {
		// Retention counts from when the store received a record, never
		// from its eventTime: records of 2021 appended now are kept by a
		// cut of an hour ago, and removed by a cut after their arrival.
		st := open(t, t.TempDir())
		defer st.Close()
		old := NewGen(5, time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)).Records(60)
		mustAppend(t, st, old)
		ctx := context.Background()
		if n, err := st.DeleteReceivedBefore(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Errorf("DeleteReceivedBefore(an hour ago) = %d, %v; want 0: the records of 2021 were received now", n, err)
		}
		q := query("111111111111", 50)
		q.ReceivedSince = time.Now().Add(-time.Hour)
		if diff := diffRecords(reference(old, q), pageAll(t, st, q)); diff != "" {
			t.Errorf("ReceivedSince an hour ago (-want +got):\n%s", diff)
		}
		q.ReceivedSince = time.Now().Add(time.Hour)
		if p, err := st.Lookup(ctx, q); err != nil || len(p.Records) != 0 {
			t.Errorf("ReceivedSince in an hour = %d records, %v; want none", len(p.Records), err)
		}
		q.AnyAccount = true
		if p, err := st.Lookup(ctx, q); err != nil || len(p.Records) != 0 {
			t.Errorf("every account, ReceivedSince in an hour = %d records, %v; want none", len(p.Records), err)
		}
		// Records received later survive a cut between the two arrivals.
		time.Sleep(1100 * time.Millisecond) // stores keep received times to the second
		cut := time.Now()
		time.Sleep(1100 * time.Millisecond)
		newer := NewGen(6, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)).Records(40)
		mustAppend(t, st, newer)
		n, err := st.DeleteReceivedBefore(ctx, cut)
		if err != nil || n != int64(len(old)) {
			t.Errorf("DeleteReceivedBefore(between the appends) = %d, %v; want %d", n, err, len(old))
		}
		if diff := diffRecords(reference(newer, query("111111111111", 50)), pageAll(t, st, query("111111111111", 50))); diff != "" {
			t.Errorf("after DeleteReceivedBefore (-want +got):\n%s", diff)
		}
		if n, err := st.DeleteReceivedBefore(ctx, cut); err != nil || n != 0 {
			t.Errorf("DeleteReceivedBefore again = %d, %v; want 0", n, err)
		}
		// Deleted records may be appended again.
		if res, err := st.Append(ctx, old[:3]); err != nil || res.Inserted != 3 {
			t.Errorf("re-appending deleted records = %+v, %v; want 3 inserted", res, err)
		}
	})
	t.Run("AnyAccount", func(t *testing.T) {
		// A responder's lookup covers every account of its region; the
		// same eventID at the same second in two accounts is two records,
		// and paging never skips nor repeats either.
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(11, base)
		var recs []audit.Record
		accounts := []string{"111111111111", "222222222222", "333333333333"}
		for i := range 150 {
			sp := Spec{Account: accounts[i%3], Time: base.Add(time.Duration(i/9) * time.Minute)}
			if i%10 == 0 {
				sp.EventID = fmt.Sprintf("shared-%02d", i/30) // in several accounts, same time
				sp.Time = base.Add(time.Hour)
			}
			if i%7 == 0 {
				sp.Region = "eu-west-1"
			}
			if i%11 == 0 {
				sp.AccessKeyID = "AKIARESPONDER"
			}
			recs = append(recs, g.Record(sp))
		}
		mustAppend(t, st, recs)
		all := audit.Query{AnyAccount: true, Region: "us-east-1", Category: audit.CategoryManagement, Limit: 50}
		var queries []audit.Query
		for _, limit := range []int{1, 2, 7, 50} {
			q := all
			q.Limit = limit
			queries = append(queries, q)
		}
		for _, a := range []audit.Attribute{
			{Key: audit.AttrEventID, Value: "shared-01"},
			{Key: audit.AttrAccessKeyID, Value: "AKIARESPONDER"},
			{Key: audit.AttrReadOnly, Value: "false"},
		} {
			q := all
			q.Limit = 2
			q.Attributes = []audit.Attribute{a}
			queries = append(queries, q)
		}
		eu := all
		eu.Region = "eu-west-1"
		everywhere := all
		everywhere.AnyRegion, everywhere.Limit = true, 4
		oneEverywhere := query("111111111111", 3)
		oneEverywhere.AnyRegion = true
		queries = append(queries, eu, everywhere, oneEverywhere)
		for _, q := range queries {
			want := reference(recs, q)
			if len(want) == 0 {
				t.Fatalf("%v: no record matches; the case tests nothing", q.Attributes)
			}
			accts := map[string]bool{}
			for _, r := range want {
				accts[r.Account] = true
			}
			if len(accts) < 2 && q.AnyAccount {
				t.Fatalf("%v: the records of one account only; the case tests nothing", q.Attributes)
			}
			if diff := diffRecords(want, pageAll(t, st, q)); diff != "" {
				t.Errorf("every account, limit %d, %v in %s: (-want +got):\n%s", q.Limit, q.Attributes, q.Region, diff)
			}
		}
		// One account's lookup still sees that account alone.
		one := query("222222222222", 50)
		if diff := diffRecords(reference(recs, one), pageAll(t, st, one)); diff != "" {
			t.Errorf("one account: (-want +got):\n%s", diff)
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
		if diff := diffRecords(reference(recs, q), pageAll(t, st, q)); diff != "" {
			t.Errorf("after reopening (-want +got):\n%s", diff)
		}
		if res, _ := st.Append(context.Background(), recs[:10]); res.Duplicates != 10 {
			t.Errorf("after reopening, re-appending gave %+v; want 10 duplicates", res)
		}
	})
	t.Run("OddValues", func(t *testing.T) {
		// Values that SQL text must carry exactly: quotes, backslashes,
		// comment and statement syntax, non-ASCII, NUL, invalid UTF-8.
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(8, base)
		odd := []string{`O'Brien`, `a\'b`, `x'); DROP TABLE events; --`, "naïve 日本", "nul\x00inside", "bad\xffutf8", `''`, `\`}
		var recs []audit.Record
		for _, v := range odd {
			recs = append(recs, g.Record(Spec{EventName: v}), g.Record(Spec{AccessKeyID: v}))
		}
		recs = append(recs, g.Records(20)...)
		mustAppend(t, st, recs)
		for _, r := range recs[:2*len(odd)] {
			// The generator may turn a key into an assumed role's: ask for
			// what the record holds.
			for _, a := range []audit.Attribute{{Key: audit.AttrEventName, Value: r.EventName}, {Key: audit.AttrAccessKeyID, Value: r.AccessKeyID}} {
				q := query("111111111111", 10)
				q.Attributes = []audit.Attribute{a}
				want, got := reference(recs, q), pageAll(t, st, q)
				if len(want) == 0 {
					t.Fatalf("%s=%q: the reference finds nothing; the test is broken", a.Key, a.Value)
				}
				if diff := diffRecords(want, got); diff != "" {
					t.Errorf("%s=%q: (-want +got):\n%s", a.Key, a.Value, diff)
				}
			}
		}
		if p := pageAll(t, st, query("111111111111", 100)); len(p) != len(recs) {
			t.Errorf("after odd lookups the store holds %d records; want %d", len(p), len(recs))
		}
	})
	t.Run("AppendOrder", func(t *testing.T) {
		dir := t.TempDir()
		st := open(t, dir)
		ctx := context.Background()
		g := NewGen(7, base)
		// Batches out of time order, with repeats inside a batch and
		// across batches, and other accounts and regions.
		b1 := g.Records(40)
		b2 := append(g.Records(30), b1[3], b1[5])
		b2 = append(b2, b2[0])
		slices.Reverse(b2)
		b3 := []audit.Record{g.Record(Spec{Account: "222222222222"}), g.Record(Spec{Region: "eu-west-1"})}
		var want []audit.Record
		seen := map[string]bool{}
		for _, b := range [][]audit.Record{b1, b2, b3} {
			mustAppend(t, st, b)
			for _, r := range b {
				if k := r.Account + "/" + r.EventID; !seen[k] {
					seen[k] = true
					want = append(want, r)
				}
			}
		}
		all := readAll(t, st, 0, 1000)
		if diff := diffRecords(want, records(all)); diff != "" {
			t.Errorf("ReadAppended(0) is not the append order (-want +got):\n%s", diff)
		}
		for i, a := range all {
			if a.Seq <= 0 || (i > 0 && a.Seq <= all[i-1].Seq) {
				t.Fatalf("sequence numbers not positive and increasing at %d: %d after %d", i, a.Seq, all[max(i-1, 0)].Seq)
			}
		}
		for _, limit := range []int{1, 3, 64} {
			if diff := cmp.Diff(seqs(all), seqs(readAll(t, st, 0, limit))); diff != "" {
				t.Errorf("paging by %d (-want +got):\n%s", limit, diff)
			}
		}
		mid := all[len(all)/2].Seq
		if got := readAll(t, st, mid, 1000); len(got) != len(all)-len(all)/2-1 || got[0].Seq <= mid {
			t.Errorf("ReadAppended(%d) returned %d records starting at %d", mid, len(got), got[0].Seq)
		}
		if got, err := st.ReadAppended(ctx, all[len(all)-1].Seq, 10); err != nil || len(got) != 0 {
			t.Errorf("ReadAppended(last) = %d records, %v; want none", len(got), err)
		}
		// Deleting everything and reopening never reuses a number.
		last := all[len(all)-1].Seq
		if _, err := st.DeleteReceivedBefore(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, st, 0, 1000); len(got) != 0 {
			t.Errorf("after deleting everything ReadAppended(0) = %d records", len(got))
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st = open(t, dir)
		defer st.Close()
		mustAppend(t, st, b1[:2])
		got := readAll(t, st, 0, 1000)
		if len(got) != 2 || got[0].Seq <= last {
			t.Errorf("after delete and reopen: %d records, first seq %d; want 2 after %d", len(got), got[0].Seq, last)
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
	t.Run("RoundTrip", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(8, base)
		var recs []audit.Record
		for i := range 60 {
			recs = append(recs, g.Record(Spec{Service: i%7 == 0, NoReadOnly: i%5 == 0}))
		}
		mustAppend(t, st, recs)
		got := pageAll(t, st, query("111111111111", 50))
		if diff := diffRecords(reference(recs, query("111111111111", 50)), got); diff != "" {
			t.Errorf("records changed on the way through the store (-want +got):\n%s", diff)
		}
		for _, r := range got {
			if r.Time.Location() != time.UTC || r.Time.Nanosecond() != 0 {
				t.Errorf("%s: Time = %v; want UTC whole seconds", r.EventID, r.Time)
			}
		}
	})
	t.Run("ManyDays", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		g := NewGen(9, base)
		var recs []audit.Record
		for i := range 400 {
			s := Spec{Time: base.Add(time.Duration(i) * 151 * time.Minute)} // about 42 days
			if i%97 == 5 {
				s.AccessKeyID, s.Bucket = "AKIARARE", "rare-bucket"
			}
			recs = append(recs, g.Record(s))
		}
		// Appended in several batches, out of time order.
		for _, part := range [][]audit.Record{recs[200:], recs[:100], recs[100:200]} {
			mustAppend(t, st, part)
		}
		queries := []audit.Query{query("111111111111", 9)}
		for _, a := range []audit.Attribute{
			{Key: audit.AttrAccessKeyID, Value: "AKIARARE"},
			{Key: audit.AttrResourceName, Value: "rare-bucket"},
			{Key: audit.AttrEventID, Value: recs[3].EventID},
			{Key: audit.AttrEventID, Value: recs[399].EventID},
			{Key: audit.AttrEventName, Value: "StopLogging"},
			{Key: audit.AttrReadOnly, Value: "false"},
		} {
			q := query("111111111111", 2)
			q.Attributes = []audit.Attribute{a}
			queries = append(queries, q)
		}
		bounded := query("111111111111", 4)
		bounded.Start, bounded.End = recs[33].Time, recs[301].Time
		bounded.Attributes = []audit.Attribute{{Key: audit.AttrAccessKeyID, Value: "AKIARARE"}}
		queries = append(queries, bounded)
		for _, q := range queries {
			want := reference(recs, q)
			if len(want) == 0 {
				t.Fatalf("%v: no record matches; the case tests nothing", q.Attributes)
			}
			if diff := diffRecords(want, pageAll(t, st, q)); diff != "" {
				t.Errorf("%v: (-want +got):\n%s", q.Attributes, diff)
			}
		}
		// A cursor taken from the middle resumes exactly there.
		q := query("111111111111", 50)
		q.After = &audit.Cursor{Time: recs[250].Time, EventID: recs[250].EventID}
		var want []audit.Record
		for _, r := range reference(recs, query("111111111111", 50)) {
			if q.After.Before(&r) {
				want = append(want, r)
			}
		}
		if diff := diffRecords(want, pageAll(t, st, q)); diff != "" {
			t.Errorf("after a cursor: (-want +got):\n%s", diff)
		}
	})
	t.Run("EmptyQueries", func(t *testing.T) {
		st := open(t, t.TempDir())
		defer st.Close()
		recs := NewGen(10, base).Records(30)
		mustAppend(t, st, recs)
		for name, q := range map[string]audit.Query{
			"other account":        query("999999999999", 5),
			"start after end":      {Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 5, Start: recs[20].Time, End: recs[10].Time},
			"before every record":  {Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 5, End: base.Add(-time.Hour)},
			"cursor at the oldest": {Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 5, After: &audit.Cursor{Time: base.Add(-time.Second)}},
			"no such event":        {Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 5, Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: "nope"}}},
		} {
			p, err := st.Lookup(context.Background(), q)
			if err != nil || len(p.Records) != 0 || p.Next != nil {
				t.Errorf("%s: Lookup = %d records, next %v, %v; want none", name, len(p.Records), p.Next, err)
			}
		}
		if res, err := st.Append(context.Background(), nil); err != nil || res != (audit.AppendResult{}) {
			t.Errorf("Append(nil) = %+v, %v", res, err)
		}
	})
}

// readAll pages through ReadAppended after after, limit records at a time.
func readAll(t *testing.T, st audit.Store, after int64, limit int) []audit.Appended {
	t.Helper()
	var out []audit.Appended
	for {
		page, err := st.ReadAppended(context.Background(), after, limit)
		if err != nil {
			t.Fatalf("ReadAppended(%d, %d): %v", after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("ReadAppended(%d, %d) returned %d records", after, limit, len(page))
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

func records(as []audit.Appended) []audit.Record {
	out := make([]audit.Record, len(as))
	for i, a := range as {
		out[i] = a.Record
	}
	return out
}

func seqs(as []audit.Appended) []int64 {
	out := make([]int64, len(as))
	for i, a := range as {
		out[i] = a.Seq
	}
	return out
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
	slices.SortFunc(out, func(a, b audit.Record) int { return audit.Newer(&a, &b) })
	return out
}

// diffRecords compares whole records; a nil and an empty Resources are
// the same.
func diffRecords(want, got []audit.Record) string {
	return cmp.Diff(want, got, EquateRecords)
}

// EquateRecords is cmpopts.EquateEmpty with byte slices (every record's
// Raw) compared by bytes.Equal. go-cmp compares a []byte element by
// element through reflection and its diff search, which made comparing
// a store's feeds with a 200 KiB record take 7 minutes under the race
// detector (internal/store/duckdb's TestBlobReferencesOfBefore).
var EquateRecords = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.FilterValues(func(a, b []byte) bool { return len(a) > 0 || len(b) > 0 }, cmp.Comparer(bytes.Equal)),
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
		if len(p.Records) == 0 {
			t.Fatalf("Lookup returned an empty page with Next = %v", p.Next)
		}
		if last := p.Records[len(p.Records)-1]; !p.Next.Time.Equal(last.Time) || p.Next.EventID != last.EventID {
			t.Fatalf("Next = %v; want the last record's position (%v, %s)", p.Next, last.Time, last.EventID)
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
