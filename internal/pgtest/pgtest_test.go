package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A database left by a test process that was killed before its cleanup
// (named after a process that no longer runs) is dropped when the next
// test database is made; one of a running process, or named in another
// form, is left.
func TestStaleDatabasesSwept(t *testing.T) {
	admin := Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) }) // after the drops below
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := prefix() + strconv.Itoa(cmd.Process.Pid) + "_0000stale"
	live := prefix() + strconv.Itoa(os.Getpid()) + "_0000live"
	other := "cairn_test_other_form_0000"
	for _, name := range []string{dead, live, other} {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
				t.Log(err)
			}
		})
	}
	_ = Database(t)
	exists := func(name string) bool {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if exists(dead) {
		t.Errorf("%s (a process that has exited) was not dropped", dead)
	}
	if !exists(live) {
		t.Errorf("%s (this running process) was dropped", live)
	}
	if !exists(other) {
		t.Errorf("%s (another form of name) was dropped", other)
	}
}
