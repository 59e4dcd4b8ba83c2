// Package mototest starts moto_server, the AWS API emulator the tests use
// as an S3-compatible bucket and as the gateway's upstream.
package mototest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/testproc"
)

// Start runs moto_server on a free loopback port until the test ends and
// returns its endpoint (http://127.0.0.1:PORT). Without moto_server on
// PATH the test is skipped, or fails when CAIRN_REQUIRE_MOTO=1 (as
// scripts/check.sh sets it: CI installs moto_server).
func Start(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CAIRN_REQUIRE_MOTO") == "1" {
			tb.Fatal("moto_server is not installed and CAIRN_REQUIRE_MOTO is set (scripts/check.sh)")
		}
		tb.Skip("moto_server is not installed (CI installs it; CAIRN_REQUIRE_MOTO=1 makes this a failure)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := testproc.Start(cmd); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(endpoint + "/moto-api/"); err == nil {
			resp.Body.Close()
			return endpoint
		}
	}
	tb.Fatal("moto_server did not come up within 30 s")
	return ""
}
