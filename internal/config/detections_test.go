package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const detectAccounts = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - id: AKIAAAAAAAAAAAAAAAAA\n            secret: s\n"

func TestDetections(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       *Detections
	}{
		{"absent", "", nil},
		{"empty section", "detections:\n", &Detections{Builtin: true, PollInterval: DefaultDetectPoll, Hunts: DefaultHunts()}},
		{"full", `detections:
  rules: [/etc/cairn/rules, ./more.yml]
  builtin: false
  poll_interval: 0s
  webhook:
    url: https://hooks.example.com/cairn
    headers: {Authorization: "Bearer abc"}
    timeout: 2s
    max_backoff: 1m
  hunts: {denied_burst: 3, warmup_records: 500}
`, &Detections{Rules: []string{"/etc/cairn/rules", "./more.yml"}, PollInterval: 0,
			Hunts: Hunts{NewPrincipalBaseline: 7 * 24 * time.Hour, DeniedBurst: 3, DeniedWindow: 10 * time.Minute, MaxKeys: 1_000_000, WarmUpRecords: 500},
			Webhook: &Webhook{URL: "https://hooks.example.com/cairn", Headers: map[string]string{"Authorization": "Bearer abc"},
				Timeout: 2 * time.Second, MaxBackoff: time.Minute}}},
		{"webhook defaults", "detections:\n  webhook: {url: 'http://127.0.0.1:9/x'}\n", &Detections{Builtin: true, PollInterval: DefaultDetectPoll, Hunts: DefaultHunts(),
			Webhook: &Webhook{URL: "http://127.0.0.1:9/x", Timeout: DefaultWebhookTimeout, MaxBackoff: DefaultWebhookMaxBackoff}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(detectAccounts+c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, cfg.Detections); diff != "" {
				t.Errorf("Detections (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWebhookSecretsNeverQuoted: a webhook URL or header value refused
// is not shown in the message (they carry tokens).
func TestWebhookSecretsNeverQuoted(t *testing.T) {
	const secret = "s3cr3t-VALUE"
	for _, y := range []string{
		"detections:\n  webhook: {url: 'ftp://x/?t=" + secret + "'}\n",
		"detections:\n  webhook: {url: 'http://" + secret + "'x'}\n",
		"detections:\n  webhook: {url: 'https://x', headers: {A: \"" + secret + "\\u0000\"}}\n",
		"detections:\n  webhook: {url: 'https://x', headers: {A: [" + secret + "]}}\n",
	} {
		_, err := Parse("c.yaml", []byte(detectAccounts+y))
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Parse(%q) = %v; want an error without the secret", y, err)
		}
	}
}
