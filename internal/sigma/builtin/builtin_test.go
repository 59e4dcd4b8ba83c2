package builtin

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/sigma"
)

const realDir = "../../../../shared/testdata/real"

// readRecords returns the records of one CloudTrail log file.
func readRecords(t testing.TB, path string) []sigma.Record {
	t.Helper()
	raws := readRaw(t, path)
	out := make([]sigma.Record, 0, len(raws))
	for _, raw := range raws {
		r, err := sigma.DecodeRecord(raw)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}

// readRaw returns the records of one CloudTrail log file as JSON.
func readRaw(t testing.TB, path string) []json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	var file struct{ Records []json.RawMessage }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return file.Records
}

// folderFiles lists the log files under dir (relative to realDir), or
// skips when the real records are absent.
func folderFiles(t testing.TB, dir string) []string {
	t.Helper()
	root := filepath.Join(realDir, dir)
	if _, err := os.Stat(root); err != nil {
		t.Skipf("no real records: %v", err)
	}
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".json.gz")) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// huntName is a hunt's name as the tables below spell it: the rule's file
// name without .yml, or the stateful hunt's name.
func huntName(in sigma.Info, file string) string {
	if file != "" {
		return strings.TrimSuffix(strings.TrimPrefix(file, "builtin:"), ".yml")
	}
	return statefulNames[in.ID]
}

var statefulNames = map[string]string{
	"5b0f3c52-8d0e-4b7b-9b1e-0c2f9a6e4d11": "new_principal_write",
	"9e2a7f14-3c6b-4f0a-8a57-2d4e1b9c7f30": "access_denied_burst",
	"c4d8e1a9-6f27-4b35-9e0c-7a1b2d3e4f56": "instance_credentials_elsewhere",
}

// huntFile runs every built-in hunt (fresh state) over one file and
// returns the names of the hunts that fired and on how many records.
func huntFile(t testing.TB, rules []*sigma.Rule, path string) map[string]int {
	fired := map[string]int{}
	byID := map[string]string{}
	for _, r := range rules {
		byID[r.ID] = huntName(sigma.Info{}, r.File)
	}
	h := sigma.Hunt{Rules: rules, Stateful: Stateful(Config{})}
	for _, rec := range readRecords(t, path) {
		h.Run(rec, func(f sigma.Finding) {
			n := byID[f.RuleID]
			if n == "" {
				n = statefulNames[f.RuleID]
			}
			fired[n]++
		})
	}
	return fired
}

// stratus says which Stratus Red Team techniques (files of
// datadog-stratus-red-team, without "aws." and ".json") each built-in hunt
// must catch; run on each technique's file alone, a hunt fires on exactly
// these. Hunts with no Stratus technique name real records elsewhere
// (real) or are tested on records built from real ones (below).
var stratus = map[string][]string{
	"iam_identity_changed": {"persistence.iam-backdoor-role", "persistence.iam-backdoor-user", "persistence.iam-create-admin-user",
		"persistence.iam-create-backdoor-role", "persistence.iam-create-user-login-profile", "privilege-escalation.iam-update-user-login-profile"},
	"iam_admin_policy_attached":         {"persistence.iam-create-admin-user", "persistence.iam-create-backdoor-role"},
	"iam_access_key_for_other_user":     {"persistence.iam-backdoor-user", "persistence.iam-create-admin-user"},
	"iam_login_profile_changed":         {"persistence.iam-create-user-login-profile", "privilege-escalation.iam-update-user-login-profile"},
	"iam_role_trust_policy_changed":     {"persistence.iam-backdoor-role"},
	"iam_role_created_trusting_account": {"persistence.iam-create-backdoor-role"},
	"cloudtrail_stopped_or_deleted":     {"defense-evasion.cloudtrail-delete", "defense-evasion.cloudtrail-stop"},
	"cloudtrail_selectors_drop_events":  {"defense-evasion.cloudtrail-event-selectors"},
	"vpc_flow_logs_deleted":             {"defense-evasion.vpc-remove-flow-logs"},
	"dns_query_logging_removed":         {"defense-evasion.dns-delete-logs"},
	"organization_left":                 {"defense-evasion.organizations-leave"},
	"console_login_without_mfa":         {"initial-access.console-login-without-mfa"},
	"secrets_retrieved":                 {"credential-access.secretsmanager-batch-retrieve-secrets", "credential-access.secretsmanager-retrieve-secrets"},
	"ssm_securestring_decrypted":        {"credential-access.ssm-retrieve-securestring-parameters"},
	"ec2_password_data_read":            {"credential-access.ec2-get-password-data"},
	"instance_credentials_elsewhere":    {"credential-access.ec2-steal-instance-credentials"},
	"lambda_public_permission":          {"persistence.lambda-backdoor-function"},
	"lambda_code_or_layers_changed":     {"persistence.lambda-layer-extension", "persistence.lambda-overwrite-code"},
	"rolesanywhere_trust_anchor":        {"persistence.rolesanywhere-create-trust-anchor"},
	"sts_federation_token":              {"persistence.sts-federation-token"},
	"ebs_snapshot_shared":               {"exfiltration.ec2-share-ebs-snapshot"},
	"ami_shared":                        {"exfiltration.ec2-share-ami"},
	"rds_snapshot_shared":               {"exfiltration.rds-share-snapshot"},
	"security_group_open_to_world":      {"exfiltration.ec2-security-group-open-port-22-ingress"},
	"ec2_user_data_read":                {"discovery.ec2-download-user-data"},
	"ec2_user_data_modified":            {"execution.ec2-user-data"},
	"ec2_gpu_instances_launched":        {"execution.ec2-launch-unusual-instances"},
	"ssm_send_command":                  {"execution.ssm-send-command", "credential-access.ec2-steal-instance-credentials"},
	"ssm_session_started":               {"execution.ssm-start-session"},
	"ec2_instance_connect_key_pushed":   {"lateral-movement.ec2-instance-connect"},
	"ec2_serial_console_access":         {"lateral-movement.ec2-serial-console-send-ssh-public-key"},
	"bedrock_model_invoked":             {"impact.bedrock-invoke-model"},
	"bedrock_model_access_enabled":      {"impact.bedrock-invoke-model"},
	"access_denied_burst":               {"credential-access.ec2-get-password-data", "discovery.ec2-download-user-data"},
	// no Stratus technique: real records of other folders, or built ones
	"guardduty_or_securityhub_disabled": nil,
	"root_user_used":                    nil,
	"new_principal_write":               nil,
}

// real names, for the hunts Stratus has no technique for, files of
// ../shared/testdata/real on which they must fire (file alone).
var real = map[string][]string{
	"guardduty_or_securityhub_disabled": {"traildiscover/DeleteDetector.json", "traildiscover/GuardDuty-StopMonitoringMembers.json",
		"traildiscover/SecurityHub-DeleteMembers.json", "traildiscover/DisassociateFromMasterAccount.json"},
	"cloudtrail_stopped_or_deleted": {"traildiscover/CloudTrail-UpdateTrail.json", "invictus-ir-aws_dataset/218007301253_CloudTrail_us-east-1_20230710T1205Z_SjF3IkuNXJkoHyar.json.gz"},
}

// benign are the folders of real records with no attack in them: no
// built-in hunt may fire there. (invictus-ir-aws_dataset is a Stratus
// attack simulation and traildiscover a catalogue of attack calls.)
var benign = []string{"opensearch-catalog", "nexthink-cloudtrail-s3-to-kinesis", "plaso"}

func allHunts(t *testing.T) []string {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rules {
		names = append(names, huntName(sigma.Info{}, r.File))
	}
	for _, s := range Stateful(Config{}) {
		names = append(names, huntName(s.Info(), ""))
	}
	return names
}

// TestEveryHuntListed: each built-in hunt has its line in the table and
// every Stratus technique is caught by at least one hunt.
func TestEveryHuntListed(t *testing.T) {
	names := allHunts(t)
	for _, n := range names {
		if _, ok := stratus[n]; !ok {
			t.Errorf("built-in hunt %s has no line in the stratus table", n)
		}
	}
	for n := range stratus {
		if !slices.Contains(names, n) {
			t.Errorf("stratus table names %s, which is no built-in hunt", n)
		}
	}
	caught := map[string]bool{}
	for _, techs := range stratus {
		for _, tech := range techs {
			caught[tech] = true
		}
	}
	for _, f := range folderFiles(t, "datadog-stratus-red-team") {
		tech := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "aws."), ".json")
		if !caught[tech] {
			t.Errorf("Stratus technique %s is caught by no built-in hunt", tech)
		}
	}
}

// TestStratus runs every built-in hunt over each Stratus technique's file
// alone: each hunt fires on exactly the techniques the table lists.
func TestStratus(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, f := range folderFiles(t, "datadog-stratus-red-team") {
		tech := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "aws."), ".json")
		for n := range huntFile(t, rules, f) {
			got[n] = append(got[n], tech)
		}
	}
	for n, want := range stratus {
		g := got[n]
		slices.Sort(g)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s fires on %v; want %v", n, g, w)
		}
	}
}

// TestRealAttackRecords: the hunts without a Stratus technique fire on
// the real records of the same attack calls elsewhere.
func TestRealAttackRecords(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	folderFiles(t, "traildiscover") // skips without the records
	for n, files := range real {
		for _, f := range files {
			if huntFile(t, rules, filepath.Join(realDir, f))[n] == 0 {
				t.Errorf("%s does not fire on %s", n, f)
			}
		}
	}
}

// TestBenign: no built-in hunt fires on the benign real records, read
// file by file and as one history.
func TestBenign(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	h := sigma.Hunt{Rules: rules, Stateful: Stateful(Config{})}
	n := 0
	for _, dir := range benign {
		for _, f := range folderFiles(t, dir) {
			for name := range huntFile(t, rules, f) {
				t.Errorf("%s fires on benign %s", name, f)
			}
			for _, rec := range readRecords(t, f) {
				n++
				h.Run(rec, func(f sigma.Finding) { t.Errorf("%s fires on benign record %s (%s)", f.Title, f.EventID, f.EventName) })
			}
		}
	}
	if n < 800 {
		t.Fatalf("read %d benign records; want the 864 of %v", n, benign)
	}
}
