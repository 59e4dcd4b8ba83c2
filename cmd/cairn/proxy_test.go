package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/awsclient"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// The addresses of TestClientBehindProxy: every one is loopback on Linux,
// so the test runs real connections from distinct sources.
const (
	proxyAddr     = "127.0.0.1" // the trusted proxy (and the server)
	clientAddr    = "127.0.0.2" // the SDK client
	untrustedAddr = "127.0.0.3" // a proxy the config does not name
)

// dialFrom is an http.Transport dialing from the local address ip.
func dialFrom(ip string) *http.Transport {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Transport{DialContext: d.DialContext}
}

// forging is an SDK HTTP client that adds X-Forwarded-For to every
// request after it is signed, as a hostile client can.
type forging struct {
	base aws.HTTPClient
	xff  string
}

func (f forging) Do(r *http.Request) (*http.Response, error) {
	if f.xff != "" {
		r.Header.Set("X-Forwarded-For", f.xff)
	}
	return f.base.Do(r)
}

// TestClientBehindProxy: behind a reverse proxy named in trusted_proxies
// (the top-level key, which the API and the console inherit), the
// recorded sourceIPAddress is the client's, as LookupEvents shows it; a
// proxy the config does not name, and an X-Forwarded-For a client forges
// (to the server or through the proxy), never change it. Real
// connections: an aws-sdk-go-v2 client from 127.0.0.2, httputil
// ReverseProxies that add X-Forwarded-For from 127.0.0.1 (trusted) and
// 127.0.0.3 (not).
func TestClientBehindProxy(t *testing.T) {
	if ln, err := net.Listen("tcp", untrustedAddr+":0"); err != nil {
		t.Skipf("this machine cannot use %s as a loopback address (Linux can): %v", untrustedAddr, err)
	} else {
		ln.Close()
	}
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90)+"trusted_proxies: ["+proxyAddr+"]\n", "")
	target, _ := url.Parse(ts.endpoint)
	trusted := httputil.NewSingleHostReverseProxy(target) // keeps Host, which the signature covers
	trustedSrv := httptest.NewServer(trusted)
	t.Cleanup(trustedSrv.Close)
	untrusted := httputil.NewSingleHostReverseProxy(target)
	untrusted.Transport = dialFrom(untrustedAddr)
	untrustedSrv := httptest.NewServer(untrusted)
	t.Cleanup(untrustedSrv.Close)

	sdk := func(endpoint, xff string) *cloudtrail.Client {
		base := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(clientAddr)}
		})
		return cloudtrail.New(cloudtrail.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
			Credentials:      credentials.NewStaticCredentialsProvider("AKIAALICE00000000001", "alice-secret-key", ""),
			RetryMaxAttempts: 1, HTTPClient: awsclient.HTTPClient(forging{base: base, xff: xff})})
	}
	direct := alice(ts)
	for i, tc := range []struct {
		name, via, xff, want string
	}{
		{"trusted proxy", trustedSrv.URL, "", clientAddr},
		{"trusted proxy, client forges X-Forwarded-For", trustedSrv.URL, "198.51.100.9", clientAddr},
		{"trusted proxy, client forges a trusted hop", trustedSrv.URL, "198.51.100.9, " + proxyAddr, clientAddr},
		{"direct, client forges X-Forwarded-For", ts.endpoint, "198.51.100.9", clientAddr},
		{"untrusted proxy", untrustedSrv.URL, "", untrustedAddr},
		{"untrusted proxy relays a forged chain", untrustedSrv.URL, "198.51.100.9, " + proxyAddr, untrustedAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trail := fmt.Sprintf("proxy-case-%d", i)
			_, err := sdk(tc.via, tc.xff).GetTrail(context.Background(), &cloudtrail.GetTrailInput{Name: aws.String(trail)})
			if code := errCode(err); code != "TrailNotFoundException" {
				t.Fatalf("GetTrail through %s = %v; want TrailNotFoundException", tc.via, err)
			}
			ev := recordOf(t, direct, "GetTrail", `"name":"`+trail+`"`)
			if got := regexp.MustCompile(`"sourceIPAddress":"([^"]*)"`).FindStringSubmatch(ev); got == nil || got[1] != tc.want {
				t.Errorf("sourceIPAddress of %s: %v; want %s", trail, got, tc.want)
			}
		})
	}

	t.Run("console behind the trusted proxy", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		tr := dialFrom(clientAddr)
		t.Cleanup(tr.CloseIdleConnections)
		browser := &http.Client{Jar: jar, Timeout: time.Until(testwait.End(t)), Transport: tr}
		resp, err := browser.Get(trustedSrv.URL + "/console/signin")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(body))
		if tok == nil {
			t.Fatalf("sign-in page without a token: %d", resp.StatusCode)
		}
		resp, err = browser.PostForm(trustedSrv.URL+"/console/signin", url.Values{"csrf": {tok[1]}, "access_key_id": {"AKIAALICE00000000001"},
			"secret_access_key": {"alice-secret-key"}, "region": {"us-east-1"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ev := recordOf(t, direct, "ConsoleLogin", `"ConsoleLogin":"Success"`)
		if !strings.Contains(ev, `"sourceIPAddress":"`+clientAddr+`"`) {
			t.Errorf("ConsoleLogin through the trusted proxy: %s; want sourceIPAddress %s", ev, clientAddr)
		}
	})
}

// recordOf returns the CloudTrailEvent of the newest name record holding
// marker, waiting up to 10 s for it to be stored.
func recordOf(t *testing.T, c *cloudtrail.Client, name, marker string) string {
	t.Helper()
	deadline := testwait.End(t)
	for {
		out, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
			{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String(name)}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			if ev := aws.ToString(e.CloudTrailEvent); strings.Contains(ev, marker) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s record holding %s", name, marker)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
