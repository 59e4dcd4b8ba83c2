package lake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/smithy-go"
)

// TestRegistryTempFilesCleaned: the temporary files a crash while saving
// lake.json leaves (atomicfile's, and the fixed lake.json.tmp of earlier
// versions) are removed at Open, the registry read is the whole previous
// one, and saving leaves none behind.
func TestRegistryTempFilesCleaned(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, Options{})
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	ctx := context.Background()
	if _, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("kept"), TerminationProtectionEnabled: aws.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	leftovers := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, registryFile+".tmp*"))
		return m
	}
	if l := leftovers(); len(l) != 0 {
		t.Fatalf("saving left %v", l)
	}
	if err := e.lake.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{registryFile + ".tmp-12345", registryFile + ".tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(`{"stores":[{"id":"half`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e = newEnvIn(t, dir, Options{})
	if l := leftovers(); len(l) != 0 {
		t.Errorf("Open left %v", l)
	}
	ls, err := e.client("AKIAAAAAAAAAAAAAAAAA").ListEventDataStores(ctx, &cloudtrail.ListEventDataStoresInput{})
	if err != nil || len(ls.EventDataStores) != 1 || aws.ToString(ls.EventDataStores[0].Name) != "kept" {
		t.Errorf("after restart: %v %+v", err, ls)
	}
}

// TestMessagesKeepUTF8: the client values Lake quotes in error messages
// are clipped to 128 bytes without cutting a character in half (the
// client would read U+FFFD), with "..." after.
func TestMessagesKeepUTF8(t *testing.T) {
	e := newEnv(t)
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	ctx := context.Background()
	for _, pad := range []int{125, 126, 127, 128} {
		name := "x-" + strings.Repeat("a", pad-2) + strings.Repeat("é", 40)
		_, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(`SELECT * FROM ` + name)})
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("pad %d: %v", pad, err)
		}
		msg := ae.ErrorMessage()
		if strings.ContainsRune(msg, '\uFFFD') || !strings.Contains(msg, "...") || strings.Contains(msg, name) {
			t.Errorf("pad %d: %s %q", pad, ae.ErrorCode(), msg)
		}
	}
}
