package config

import (
	"testing"
	"time"
)

func TestHunts(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	d, err := Parse("c.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if d.Detections != nil {
		t.Errorf("no detections section: %+v; want nil", d.Detections)
	}
	d, err = Parse("c.yaml", []byte(head+"detections:\n  builtin: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Detections.Hunts != DefaultHunts() {
		t.Errorf("defaults %+v; want %+v", d.Detections.Hunts, DefaultHunts())
	}
	c, err := Parse("c.yaml", []byte(head+"detections:\n  hunts:\n    new_principal_baseline: 72h\n    denied_burst: 25\n    denied_window: 1m\n    max_keys: 5000\n    warmup_records: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Hunts{NewPrincipalBaseline: 72 * time.Hour, DeniedBurst: 25, DeniedWindow: time.Minute, MaxKeys: 5000}
	if c.Detections.Hunts != want {
		t.Errorf("decoded %+v; want %+v", c.Detections.Hunts, want)
	}
	// The section moved under detections: a top-level hunts is refused.
	if _, err := Parse("c.yaml", []byte(head+"hunts:\n  denied_burst: 25\n")); err == nil {
		t.Error("a top-level hunts section was accepted")
	}
}
