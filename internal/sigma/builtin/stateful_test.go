package builtin

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/sigma"
)

// rec builds a record from fields (dotted keys set nested values).
func rec(t *testing.T, fields map[string]any) sigma.Record {
	t.Helper()
	m := map[string]any{}
	for k, v := range fields {
		cur := m
		parts := splitDots(k)
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = v
	}
	data, _ := json.Marshal(m)
	r, err := sigma.DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

var t0 = time.Date(2024, 7, 30, 21, 0, 0, 0, time.UTC)

func call(at time.Duration, acct, arn, typ, errCode string, readOnly bool) map[string]any {
	f := map[string]any{"eventTime": t0.Add(at).Format(time.RFC3339), "eventID": fmt.Sprint(at), "recipientAccountId": acct,
		"eventName": "GetPasswordData", "eventSource": "ec2.amazonaws.com", "awsRegion": "us-east-1", "readOnly": readOnly,
		"userIdentity.arn": arn, "userIdentity.type": typ, "sourceIPAddress": "198.51.100.7"}
	if errCode != "" {
		f["errorCode"] = errCode
	}
	return f
}

// fires runs one fresh stateful hunt (by name) over records and returns
// the indexes of the records it fired on.
func fires(t *testing.T, name string, cfg Config, recs []sigma.Record) []int {
	t.Helper()
	var h sigma.Stateful
	for _, s := range Stateful(cfg) {
		if statefulNames[s.Info().ID] == name {
			h = s
		}
	}
	if h == nil {
		t.Fatalf("no stateful hunt %s", name)
	}
	var out []int
	for i, r := range recs {
		if _, ok := h.Observe(r); ok {
			out = append(out, i)
		}
	}
	return out
}

func TestDeniedBurst(t *testing.T) {
	const role = "arn:aws:sts::111111111111:assumed-role/r/s"
	series := func(n int, step time.Duration, acct func(i int) string, arn func(i int) string, code string, reverse bool) []sigma.Record {
		var out []sigma.Record
		for i := range n {
			j := i
			if reverse {
				j = n - 1 - i
			}
			out = append(out, rec(t, call(time.Duration(j)*step, acct(j), arn(j), "AssumedRole", code, true)))
		}
		return out
	}
	one := func(int) string { return "111111111111" }
	same := func(int) string { return role }
	cases := []struct {
		name string
		recs []sigma.Record
		want int // findings
	}{
		{"ten within the window", series(10, time.Second, one, same, "Client.UnauthorizedOperation", false), 1},
		{"nine is no burst", series(9, time.Second, one, same, "AccessDenied", false), 0},
		{"thirty is one burst", series(30, time.Second, one, same, "AccessDenied", false), 1},
		{"newest first (a LookupEvents dump)", series(10, time.Second, one, same, "AccessDenied", true), 1},
		{"spread over longer than the window", series(10, 2*time.Minute, one, same, "AccessDenied", false), 0},
		{"two bursts an hour apart", append(series(10, time.Second, one, same, "AccessDenied", false),
			series(10, time.Second, one, same, "AccessDenied", false)...), 1},
		{"other errors are not denials", series(20, time.Second, one, same, "ThrottlingException", false), 0},
		{"AccessDeniedException", series(10, time.Second, one, same, "AccessDeniedException", false), 1},
		{"ten principals, one each", series(10, time.Second, one, func(i int) string { return fmt.Sprint(role, i) }, "AccessDenied", false), 0},
		{"ten accounts, one each", series(10, time.Second, func(i int) string { return fmt.Sprint(111111111110 + i) }, same, "AccessDenied", false), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "two bursts an hour apart" {
				// the second series is an hour later: a second burst
				for i := 10; i < 20; i++ {
					c.recs[i] = rec(t, call(time.Hour+time.Duration(i)*time.Second, "111111111111", role, "AssumedRole", "AccessDenied", true))
				}
				c.want = 2
			}
			if got := len(fires(t, "access_denied_burst", Config{}, c.recs)); got != c.want {
				t.Errorf("findings = %d; want %d", got, c.want)
			}
		})
	}
	// configurable
	if got := len(fires(t, "access_denied_burst", Config{DeniedBurst: 3, DeniedWindow: time.Minute},
		series(3, 10*time.Second, one, same, "AccessDenied", false))); got != 1 {
		t.Errorf("DeniedBurst 3: findings = %d; want 1", got)
	}
}

func TestNewPrincipalWrite(t *testing.T) {
	const acct = "111111111111"
	alice, mallory := "arn:aws:iam::111111111111:user/alice", "arn:aws:iam::111111111111:user/mallory"
	day := 24 * time.Hour
	cases := []struct {
		name string
		recs []map[string]any
		want []int
	}{
		{"known principal writes", []map[string]any{call(0, acct, alice, "IAMUser", "", true), call(8*day, acct, alice, "IAMUser", "", false)}, nil},
		{"new principal writes after the baseline", []map[string]any{call(0, acct, alice, "IAMUser", "", true),
			call(8*day, acct, mallory, "IAMUser", "", false), call(8*day+time.Hour, acct, mallory, "IAMUser", "", false)}, []int{1}},
		{"new principal reads, then writes", []map[string]any{call(0, acct, alice, "IAMUser", "", true),
			call(8*day, acct, mallory, "IAMUser", "", true), call(9*day, acct, mallory, "IAMUser", "", false)}, []int{2}},
		{"within the baseline", []map[string]any{call(0, acct, alice, "IAMUser", "", true), call(6*day, acct, mallory, "IAMUser", "", false)}, nil},
		{"baseline per account", []map[string]any{call(0, acct, alice, "IAMUser", "", true),
			call(8*day, "222222222222", mallory, "IAMUser", "", false)}, nil},
		{"AWS services are not principals", []map[string]any{call(0, acct, alice, "IAMUser", "", true),
			call(8*day, acct, "", "AWSService", "", false)}, nil},
		{"older record read later extends the baseline", []map[string]any{call(8*day, acct, alice, "IAMUser", "", true),
			call(0, acct, alice, "IAMUser", "", true), call(8*day, acct, mallory, "IAMUser", "", false)}, []int{2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var recs []sigma.Record
			for _, f := range c.recs {
				if f["userIdentity.type"] == "AWSService" {
					delete(f, "userIdentity.arn")
					f["userIdentity.invokedBy"] = "ec2.amazonaws.com"
				}
				recs = append(recs, rec(t, f))
			}
			got := fires(t, "new_principal_write", Config{}, recs)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("fires on %v; want %v", got, c.want)
			}
		})
	}
}

// TestNewPrincipalOnRealRecords: the benign opensearch-catalog history
// (one account, five minutes) is the baseline; a Stratus backdoor user's
// write, moved into that account a week later, fires; the same call by a
// principal of the baseline does not.
func TestNewPrincipalOnRealRecords(t *testing.T) {
	base := readRecords(t, folderFiles(t, "opensearch-catalog")[0])
	attack := readRecords(t, filepath.Join(realDir, "datadog-stratus-red-team/aws.persistence.iam-create-admin-user.json"))
	acct := base[0].Str("recipientAccountId")
	shift := func(r sigma.Record, arn string) sigma.Record {
		c := sigma.Record{}
		for k, v := range r {
			c[k] = v
		}
		c["recipientAccountId"] = acct
		c["eventTime"] = "2021-12-10T00:00:00Z"
		ui := map[string]any{}
		for k, v := range r["userIdentity"].(map[string]any) {
			ui[k] = v
		}
		ui["arn"] = arn
		c["userIdentity"] = ui
		return c
	}
	known := base[0].Principal()
	for _, tc := range []struct {
		arn  string
		want bool
	}{{attack[0].Str("userIdentity", "arn"), true}, {known, false}} {
		recs := append(append([]sigma.Record{}, base...), shift(attack[0], tc.arn))
		got := fires(t, "new_principal_write", Config{}, recs)
		if (len(got) == 1 && got[0] == len(base)) != tc.want || len(got) > 1 {
			t.Errorf("%s: fires on %v; want the attack record: %v", tc.arn, got, tc.want)
		}
	}
}

func TestInstanceCredentials(t *testing.T) {
	const acct = "111111111111"
	inst := func(at time.Duration, key, ip string) map[string]any {
		f := call(at, acct, "arn:aws:sts::111111111111:assumed-role/web/i-0abc", "AssumedRole", "", true)
		f["userIdentity.accessKeyId"] = key
		f["userIdentity.sessionContext.ec2RoleDelivery"] = "2.0"
		f["sourceIPAddress"] = ip
		return f
	}
	user := func(at time.Duration, typ, ip string) map[string]any {
		f := call(at, acct, "arn:aws:iam::111111111111:user/eve", typ, "", false)
		f["sourceIPAddress"] = ip
		return f
	}
	cases := []struct {
		name string
		recs []map[string]any
		want []int
	}{
		{"from the address of an IAM user", []map[string]any{user(0, "IAMUser", "203.0.113.9"), inst(time.Minute, "ASIA1", "203.0.113.9"),
			inst(2*time.Minute, "ASIA1", "203.0.113.9")}, []int{1}},
		{"from its own address only", []map[string]any{user(0, "IAMUser", "203.0.113.9"), inst(time.Minute, "ASIA1", "198.51.100.1"),
			inst(2*time.Minute, "ASIA1", "198.51.100.1")}, nil},
		{"from a second address", []map[string]any{inst(0, "ASIA1", "198.51.100.1"), inst(time.Minute, "ASIA1", "203.0.113.50")}, []int{1}},
		{"another role's session shares the address", []map[string]any{user(0, "AssumedRole", "198.51.100.1"), inst(time.Minute, "ASIA1", "198.51.100.1")}, nil},
		{"AWS Internal is no address", []map[string]any{user(0, "IAMUser", "AWS Internal"), inst(time.Minute, "ASIA1", "AWS Internal")}, nil},
		{"two instances, two keys", []map[string]any{inst(0, "ASIA1", "198.51.100.1"), inst(time.Minute, "ASIA2", "198.51.100.2")}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var recs []sigma.Record
			for _, f := range c.recs {
				recs = append(recs, rec(t, f))
			}
			got := fires(t, "instance_credentials_elsewhere", Config{}, recs)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("fires on %v; want %v", got, c.want)
			}
		})
	}
}

// TestRootUsed: the Stratus console sign-in, made by root, fires; by an
// IAM user (as recorded) or by a service acting for root, it does not.
func TestRootUsed(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	var root *sigma.Rule
	for _, r := range rules {
		if huntName(sigma.Info{}, r.File) == "root_user_used" {
			root = r
		}
	}
	login := readRecords(t, filepath.Join(realDir, "datadog-stratus-red-team/aws.initial-access.console-login-without-mfa.json"))[0]
	as := func(typ string, invokedBy string) sigma.Record {
		c := sigma.Record{}
		for k, v := range login {
			c[k] = v
		}
		ui := map[string]any{"type": typ, "accountId": "111111111111", "arn": "arn:aws:iam::111111111111:root"}
		if invokedBy != "" {
			ui["invokedBy"] = invokedBy
		}
		c["userIdentity"] = ui
		return c
	}
	if root.Match(login) {
		t.Error("fires on an IAM user's sign-in")
	}
	if !root.Match(as("Root", "")) {
		t.Error("does not fire on root's sign-in")
	}
	if !root.Match(as("root", "")) {
		t.Error("does not fire on type spelt in lower case")
	}
	if root.Match(as("Root", "cloudformation.amazonaws.com")) {
		t.Error("fires on a service acting for root")
	}
}

// TestHostileRecords: records of odd shapes (wrong types, nulls, arrays
// where objects belong, bad times) go through every built-in hunt, by Run
// and by RunBatch, without a panic and with the same findings.
func TestHostileRecords(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	hostile := []string{
		`{}`,
		`{"eventName":null,"userIdentity":null}`,
		`{"eventName":"StopLogging","eventTime":7,"eventID":["5"],"userIdentity":"Root","readOnly":"maybe","errorCode":{"x":1}}`,
		`{"eventName":"GetPasswordData","eventTime":"not a time","errorCode":"AccessDenied","userIdentity":{"arn":"a"}}`,
		`{"eventName":"GetCallerIdentity","eventTime":"2024-01-01T00:00:00Z","sourceIPAddress":"AWS Internal","userIdentity":{"type":"AssumedRole","sessionContext":{"ec2RoleDelivery":"2.0"}}}`,
		`{"eventName":"AuthorizeSecurityGroupIngress","eventSource":"ec2.amazonaws.com","requestParameters":{"ipPermissions":{"items":[null,1,"x",{"ipRanges":{"items":[{"cidrIp":null}]}}]}}}`,
		`{"eventName":"PutEventSelectors","eventSource":"cloudtrail.amazonaws.com","requestParameters":{"eventSelectors":"All"}}`,
		`{"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","requestParameters":{"userName":["a","b"]},"userIdentity":{"userName":{"x":1}}}`,
		`{"eventName":"` + strings.Repeat("A", 10000) + `","readOnly":false,"eventTime":"2024-01-01T00:00:00Z","userIdentity":{"arn":"` + strings.Repeat("\u202e", 100) + `"}}`,
	}
	var one, batched []sigma.Finding
	h := sigma.Hunt{Rules: rules, Stateful: Stateful(Config{})}
	var in []sigma.Input
	for _, js := range hostile {
		r, err := sigma.DecodeRecord([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		h.Run(r, func(f sigma.Finding) { one = append(one, f) })
		in = append(in, sigma.Input{Raw: []byte(js), EventName: r.Str("eventName")})
	}
	h = sigma.Hunt{Rules: rules, Stateful: Stateful(Config{})}
	if bad := h.RunBatch(in, 2, func(f sigma.Finding) { batched = append(batched, f) }); bad != 0 {
		t.Errorf("bad = %d; want 0 (every record is a JSON object)", bad)
	}
	if fmt.Sprint(one) != fmt.Sprint(batched) {
		t.Errorf("Run found %v\nRunBatch %v", one, batched)
	}
}
