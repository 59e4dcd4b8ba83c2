// Command anonbody opens N connections to a cairn server at once, each
// sending a request of SIZE bytes to the ImportRecords target as a caller
// cairn cannot name, and reports how they were answered; bench/anonymous.sh
// samples the server's RSS meanwhile (issue 11 item 4).
//
//	anonbody -endpoint http://127.0.0.1:4579 -n 100 -size 8388608 -as anonymous|unknown-key|bad-signature
//
// anonymous sends no Authorization; unknown-key signs with a key the
// server does not have; bad-signature signs with a known key ID (given
// with -key) and a wrong secret, without X-Amz-Content-Sha256 as botocore
// does, so the server needs the body to find the signature wrong.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:4579", "cairn server")
	n := flag.Int("n", 100, "concurrent connections")
	size := flag.Int("size", 8<<20, "body bytes per request")
	as := flag.String("as", "anonymous", "anonymous, unknown-key or bad-signature")
	key := flag.String("key", "AKIAALICE00000000001", "known access key ID for bad-signature")
	flag.Parse()

	body := bytes.Repeat([]byte(" "), *size)
	copy(body, `{"Records":[]}`)
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A new transport per request: one connection each.
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			r, _ := http.NewRequest(http.MethodPost, *endpoint+"/", bytes.NewReader(body))
			r.Header.Set("X-Amz-Target", "CairnImport_20251101.ImportRecords")
			r.Header.Set("Content-Type", "application/x-amz-json-1.1")
			switch *as {
			case "unknown-key":
				sign(r, "AKIAUNKNOWN000000001", "x", hash)
			case "bad-signature":
				sign(r, *key, "wrong-secret", hash)
			}
			answer := "transport error"
			resp, err := c.Do(r)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answer = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
				if len(answer) > 120 {
					answer = answer[:120]
				}
			} else {
				answer += ": " + err.Error()
				if len(answer) > 60 {
					answer = answer[:60]
				}
			}
			mu.Lock()
			answers[answer]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	keys := make([]string, 0, len(answers))
	for k := range answers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%5d  %s\n", answers[k], k)
	}
	fmt.Fprintf(os.Stderr, "%d requests of %d bytes as %s in %v\n", *n, *size, *as, time.Since(start).Round(time.Millisecond))
}

func sign(r *http.Request, key, secret, hash string) {
	v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, r, hash, "cloudtrail", "us-east-1", time.Now())
}
