package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestConsoleQuickStartKey: with no --config, the key cairn generates
// signs in to the console, and the sign-in and the console's lookups are
// in Event History as LookupEvents through the API shows them.
func TestConsoleQuickStartKey(t *testing.T) {
	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, ln, serveFlags{dataDir: dataDir}, slog.New(slog.DiscardHandler), io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	endpoint := "http://" + ln.Addr().String()
	waitHealthy(t, endpoint)
	creds, err := os.ReadFile(filepath.Join(dataDir, awsCredsFile))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`aws_access_key_id = (\S+)\naws_secret_access_key = (\S+)`).FindStringSubmatch(string(creds))
	if m == nil {
		t.Fatalf("no key in %s", creds)
	}
	key, secret := m[1], m[2]

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: time.Until(testwait.End(t))}
	resp, err := browser.Get(endpoint + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(body))
	if tok == nil {
		t.Fatalf("sign-in page without a token: %d", resp.StatusCode)
	}
	resp, err = browser.PostForm(endpoint+"/console/signin", url.Values{"csrf": {tok[1]}, "access_key_id": {key},
		"secret_access_key": {secret}, "region": {"eu-west-1"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="events-table"`) || resp.Request.URL.Path != "/console/events" {
		t.Fatalf("sign-in with the generated key ended at %s with %d", resp.Request.URL, resp.StatusCode)
	}

	api := newCloudTrail(endpoint, "eu-west-1", key, secret, 1)
	want := map[string]string{"ConsoleLogin": "signin.amazonaws.com", "LookupEvents": "cloudtrail.amazonaws.com"}
	deadline := testwait.End(t)
	for name, source := range want {
		for {
			out, err := api.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
				{AttributeKey: types.LookupAttributeKeyEventSource, AttributeValue: aws.String(source)},
				{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String(name)}}})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range out.Events {
				ev := aws.ToString(e.CloudTrailEvent)
				if name == "ConsoleLogin" && strings.Contains(ev, `"ConsoleLogin":"Success"`) ||
					name == "LookupEvents" && strings.Contains(ev, `"sessionCredentialFromConsole":"true"`) && strings.Contains(ev, `"userAgent":"cairn-console"`) {
					found = true
				}
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s record from the console in eu-west-1", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestConsoleDisabled: console.enabled false leaves / and /console/ to the
// API, which answers a browser as it answers any unsigned call.
func TestConsoleDisabled(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90)+"console:\n  enabled: false\n", "")
	for _, path := range []string{"/", "/console/", "/console/signin"} {
		req, _ := http.NewRequest("GET", ts.endpoint+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
			t.Errorf("GET %s with the console off = %d %s; want the API's 403", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

func waitHealthy(t *testing.T, endpoint string) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if i > 500 {
			t.Fatal("server did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
