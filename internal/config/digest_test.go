package config

import (
	"strings"
	"testing"
	"time"
)

func TestDigestKeyRotation(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	c, err := Parse("c.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.DigestKeyRotation != DefaultDigestKeyRotation {
		t.Errorf("default rotation %v", c.Delivery.DigestKeyRotation)
	}
	c, err = Parse("c.yaml", []byte(head+"delivery:\n  digest_key_rotation: 48h\n"))
	if err != nil || c.Delivery.DigestKeyRotation != 48*time.Hour {
		t.Errorf("48h: %v %v", c.Delivery.DigestKeyRotation, err)
	}
	for _, bad := range []string{"1s", "forever", "100000h"} {
		_, err := Parse("c.yaml", []byte(head+"delivery:\n  digest_key_rotation: "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "c.yaml:8") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
