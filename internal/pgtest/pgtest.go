// Package pgtest gives tests a fresh PostgreSQL database on loopback.
//
// The server is found through CAIRN_TEST_POSTGRES, a connection string of
// a role that may create databases (default
// postgres://cairn:cairn@127.0.0.1:5432/postgres?sslmode=disable, the role
// scripts/check.sh creates). When it cannot be reached and the test runs
// as root on a machine with Debian's pg_ctlcluster, the cluster is started
// once. Without a server the test is skipped, or fails when
// CAIRN_REQUIRE_POSTGRES=1 (scripts/check.sh and CI set it).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// DefaultAdmin is the connection string used when CAIRN_TEST_POSTGRES is
// unset.
const DefaultAdmin = "postgres://cairn:cairn@127.0.0.1:5432/postgres?sslmode=disable"

// Admin returns the administrative connection string, skipping or failing
// tb (see the package doc) when the server cannot be reached.
func Admin(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("CAIRN_TEST_POSTGRES")
	if dsn == "" {
		dsn = DefaultAdmin
	}
	err := ping(tb, dsn)
	if err != nil && os.Geteuid() == 0 {
		if start() {
			err = ping(tb, dsn)
		}
	}
	if err != nil {
		if os.Getenv("CAIRN_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL is not reachable at CAIRN_TEST_POSTGRES (%s) and CAIRN_REQUIRE_POSTGRES is set (scripts/check.sh): %v", redact(dsn), err)
		}
		tb.Skipf("PostgreSQL is not reachable at CAIRN_TEST_POSTGRES (%s): %v (CAIRN_REQUIRE_POSTGRES=1 makes this a failure)", redact(dsn), err)
	}
	return dsn
}

// Database creates a fresh database for tb, dropped when tb ends, and
// returns its connection string.
func Database(tb testing.TB) string {
	tb.Helper()
	admin := Admin(tb)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix() + strconv.Itoa(os.Getpid()) + "_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithDeadline(context.Background(), testwait.End(tb))
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	sweep(ctx, tb, conn)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Logf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("pgtest: CAIRN_TEST_POSTGRES is not a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// prefix is the start of the names of this host's test databases:
// cairn_test_, then a hash of the host name, so that test processes of
// several hosts sharing one server leave each other's databases alone.
func prefix() string {
	host, _ := os.Hostname()
	h := fnv.New32a()
	h.Write([]byte(host))
	return fmt.Sprintf("cairn_test_%08x_", h.Sum32())
}

// sweep drops the databases that test processes of this host left when
// they were killed before their cleanup ran (a timeout, a SIGKILL): those
// named after a process that no longer runs. A database of a running
// process, or named in another form, is left alone.
func sweep(ctx context.Context, tb testing.TB, conn *pgx.Conn) {
	pre := prefix()
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", pre)
	if err != nil {
		tb.Logf("pgtest: list test databases: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Logf("pgtest: list test databases: %v", err)
		return
	}
	for _, name := range names {
		pid, _, ok := strings.Cut(strings.TrimPrefix(name, pre), "_")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 || alive(n) {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Logf("pgtest: drop the stale database %s: %v", name, err)
		}
	}
}

// ping connects to dsn once, waiting for an answer until the test's
// deadline (testwait): a server that refuses answers at once, and one
// slow to answer on a loaded machine is not taken for an absent one.
func ping(tb testing.TB, dsn string) error {
	ctx, cancel := context.WithDeadline(context.Background(), testwait.End(tb))
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(context.Background())
}

// start starts Debian's PostgreSQL clusters that are down.
func start() bool {
	ctl, err := exec.LookPath("pg_ctlcluster")
	if err != nil {
		return false
	}
	versions, _ := filepath.Glob("/etc/postgresql/*/main")
	started := false
	for _, v := range versions {
		ver := filepath.Base(filepath.Dir(v))
		if exec.Command(ctl, ver, "main", "start").Run() == nil {
			started = true
		}
	}
	return started
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
