// Command putaudit sends PutAuditEvents calls to a running cairn until it
// is interrupted (SIGINT, SIGTERM), at a steady rate or as fast as its
// clients can, and then prints how many events were acknowledged.
// bench/lake-load.sh runs it beside a load (PUT=events/s): a busy channel
// during StartImport. It creates its own custom event data store and
// channel in the key's account.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/awsclient"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:8080", "cairn endpoint")
	region := flag.String("region", "us-east-1", "region")
	key := flag.String("key", "", "access key ID:secret")
	account := flag.String("account", "", "the key's account ID (the events' recipientAccountId)")
	rate := flag.Int("rate", 1000, "events/s to send (0: as fast as the clients can)")
	clients := flag.Int("clients", 4, "concurrent clients")
	flag.Parse()
	id, secret, ok := strings.Cut(*key, ":")
	if !ok || *account == "" {
		log.Fatal("putaudit: -key ID:SECRET and -account are required")
	}
	ctx := context.Background()
	ct := cloudtrail.New(cloudtrail.Options{Region: *region, BaseEndpoint: aws.String(*endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), HTTPClient: awsclient.HTTPClient(nil)})
	field := "eventCategory"
	st, err := ct.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(fmt.Sprintf("putaudit-%d", time.Now().UnixNano())),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{FieldSelectors: []types.AdvancedFieldSelector{{Field: &field, Equals: []string{"ActivityAuditLog"}}}}}})
	if err != nil {
		log.Fatal(err)
	}
	ch, err := ct.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String(fmt.Sprintf("putaudit-%d", time.Now().UnixNano())), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: st.EventDataStoreArn}}})
	if err != nil {
		log.Fatal(err)
	}
	target := *endpoint + "/PutAuditEvents?channelArn=" + url.QueryEscape(aws.ToString(ch.ChannelArn))
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
	hc := &http.Client{}

	const perCall = 100
	var seq, acked, throttled atomic.Int64
	send := func() error {
		n := seq.Add(1)
		events := make([]map[string]string, perCall)
		for i := range events {
			events[i] = map[string]string{"id": fmt.Sprintf("c%d-%d", n, i), "eventData": fmt.Sprintf(
				`{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"alice","details":{"team":"blue"}},"userAgent":"app/1","eventSource":"myapp.example.com","eventName":"Op%d","eventTime":"2026-01-02T03:04:05Z","UID":"u-%d-%d","requestParameters":{"doc":"a","n":2},"sourceIPAddress":"10.0.0.1","recipientAccountId":%q}`,
				i%7, n, i, *account)}
		}
		body, _ := json.Marshal(map[string]any{"auditEvents": events})
		sum := sha256.Sum256(body)
		for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			r, _ := http.NewRequest("POST", target, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			if err := signer.SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), "cloudtrail-data", *region, time.Now()); err != nil {
				return err
			}
			resp, err := hc.Do(r)
			if err != nil {
				return err
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var out struct {
				Successful, Failed []json.RawMessage
				Type               string `json:"__type"`
			}
			err = json.Unmarshal(rb, &out)
			if resp.StatusCode == 400 && out.Type == "ThrottlingException" {
				throttled.Add(1)
				time.Sleep(backoff)
				continue
			}
			if err != nil || resp.StatusCode != 200 || len(out.Failed) > 0 {
				return fmt.Errorf("PutAuditEvents: %d %.300s", resp.StatusCode, rb)
			}
			acked.Add(int64(len(out.Successful)))
			return nil
		}
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	// Calls are started on a schedule (rate/perCall a second, shared by
	// the clients), or back to back when rate is 0.
	var tick <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Second * perCall / time.Duration(*rate))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range *clients {
		wg.Go(func() {
			for {
				if tick != nil {
					select {
					case <-tick:
					case <-done:
						return
					}
				} else {
					select {
					case <-done:
						return
					default:
					}
				}
				if err := send(); err != nil {
					log.Print(err)
					return
				}
			}
		})
	}
	<-stop
	close(done)
	wg.Wait()
	s := time.Since(start).Seconds()
	fmt.Printf("putaudit: %d events acknowledged in %.1f s: %.0f events/s, %d throttled calls\n", acked.Load(), s, float64(acked.Load())/s, throttled.Load())
}
