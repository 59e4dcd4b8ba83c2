// Package mototest starts moto_server, the AWS API emulator the tests use
// as an S3-compatible bucket and as the gateway's upstream.
package mototest

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"

	"github.com/cairn-audit/cairn/internal/testaddr"
	"github.com/cairn-audit/cairn/internal/testproc"
	"github.com/cairn-audit/cairn/internal/testwait"
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
	_, port, _ := net.SplitHostPort(testaddr.Free(tb))
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", port)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := testproc.Start(cmd); err != nil {
		tb.Fatal(err)
	}
	endpoint := "http://127.0.0.1:" + port
	// moto_server (Python) takes seconds to start on a quiet machine and
	// far longer on a loaded one: wait for it as long as the test may run
	// (testwait), and fail early only when the process has exited.
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	testwait.UntilNil(tb, "moto_server answering on "+endpoint, func() error {
		select {
		case <-exited:
			tb.Fatalf("moto_server exited before answering: %v", cmd.ProcessState)
		default:
		}
		resp, err := http.Get(endpoint + "/moto-api/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return endpoint
}
