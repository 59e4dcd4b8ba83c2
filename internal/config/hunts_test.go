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
	if d.Hunts != DefaultHunts() {
		t.Errorf("defaults %+v; want %+v", d.Hunts, DefaultHunts())
	}
	c, err := Parse("c.yaml", []byte(head+"hunts:\n  new_principal_baseline: 72h\n  denied_burst: 25\n  denied_window: 1m\n  max_keys: 5000\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Hunts{NewPrincipalBaseline: 72 * time.Hour, DeniedBurst: 25, DeniedWindow: time.Minute, MaxKeys: 5000}
	if c.Hunts != want {
		t.Errorf("decoded %+v; want %+v", c.Hunts, want)
	}
}
