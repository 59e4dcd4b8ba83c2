package duckdb

import (
	"context"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	if err := st.SetMemoryLimit(ctx, "300MB"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := st.db.QueryRowContext(ctx, `SELECT current_setting('memory_limit')`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "286.1 MiB" && got != "300.0 MB" {
		t.Errorf("memory_limit = %q after SetMemoryLimit(300MB)", got)
	}
	for _, bad := range []string{"", "1GB'; DROP TABLE events; --", "-1GB", "lots", "512", "1TB"} {
		if err := st.SetMemoryLimit(ctx, bad); err == nil {
			t.Errorf("SetMemoryLimit(%q) accepted", bad)
		}
	}
}
