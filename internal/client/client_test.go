package client

import (
	"context"
	"errors"
	"testing"
)

func TestResolveRegion(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, DefaultRegion},
		{[]string{"", ""}, DefaultRegion},
		{[]string{"eu-west-3", "us-west-2"}, "eu-west-3"},
		{[]string{"", "us-west-2", "ap-south-1"}, "us-west-2"},
		{[]string{"", "", "ap-south-1"}, "ap-south-1"},
	} {
		if got := ResolveRegion(c.in...); got != c.want {
			t.Errorf("ResolveRegion(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

func TestNewNeedsAnEndpoint(t *testing.T) {
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Error("New(Config{}) = nil error; want one (no endpoint)")
	}
}

func TestPoll(t *testing.T) {
	t.Run("done", func(t *testing.T) {
		n := 0
		err := poll(context.Background(), func() (bool, error) { n++; return n == 3, nil }, func(context.Context) { t.Error("cancelled") })
		if err != nil || n != 3 {
			t.Errorf("poll = %v after %d checks; want nil after 3", err, n)
		}
	})
	t.Run("error", func(t *testing.T) {
		boom := errors.New("boom")
		err := poll(context.Background(), func() (bool, error) { return false, boom }, func(context.Context) { t.Error("cancelled") })
		if !errors.Is(err, boom) {
			t.Errorf("poll = %v; want %v", err, boom)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := false
		err := poll(ctx, func() (bool, error) { cancel(); return false, nil }, func(c context.Context) {
			cancelled = c.Err() == nil // the server-side cancel outlives ctx
		})
		if !errors.Is(err, context.Canceled) || !cancelled {
			t.Errorf("poll = %v, cancelled with a live context %v; want context.Canceled, true", err, cancelled)
		}
	})
}
