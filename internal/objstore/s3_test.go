package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/objstore"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

func TestParseS3URL(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix string }{
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://b/p", "b", "p/"},
		{"s3://b/p/q/", "b", "p/q/"},
	} {
		b, p, err := objstore.ParseS3URL(tc.in)
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseS3URL(%q) = %q %q %v", tc.in, b, p, err)
		}
	}
	for _, bad := range []string{"", "b/p", "http://b/p", "s3:///p", "s3://b/../x", "s3://b/p/../q", "s3://b/p?x=1"} {
		if _, _, err := objstore.ParseS3URL(bad); err == nil {
			t.Errorf("ParseS3URL(%q) accepted", bad)
		}
	}
}

func newS3(t *testing.T, srv *testutil.S3Server, bucket string) *objstore.S3 {
	t.Helper()
	s, err := objstore.NewS3(objstore.S3Config{URL: "s3://" + bucket + "/pfx", Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLeases against versitygw: of 8 nodes asking at once exactly one
// gets the lease; the others see its holder; the holder renews it; after
// release it can be taken again; an expired lease is taken over by
// exactly one of 8 nodes, and its former holder's renewal then fails.
func TestLeases(t *testing.T) {
	srv := testutil.StartS3(t)
	bucket := srv.Bucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := make([]*objstore.S3, 8)
	for i := range nodes {
		nodes[i] = newS3(t, srv, bucket)
	}
	if err := nodes[0].Check(ctx); err != nil {
		t.Fatal(err)
	}

	race := func(ttl time.Duration) (winner int, leases []*objstore.Lease) {
		t.Helper()
		leases = make([]*objstore.Lease, len(nodes))
		infos := make([]objstore.LeaseInfo, len(nodes))
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				leases[i], infos[i], errs[i] = n.AcquireLease(ctx, "distfiles/x.tar", fmt.Sprint("node", i), "", ttl)
			}()
		}
		close(start)
		wg.Wait()
		winner = -1
		for i := range nodes {
			switch {
			case errs[i] == nil:
				if winner >= 0 {
					t.Fatalf("nodes %d and %d both hold the lease", winner, i)
				}
				winner = i
			case !errors.Is(errs[i], objstore.ErrLeaseHeld):
				t.Fatalf("node %d: %v", i, errs[i])
			}
		}
		if winner < 0 {
			t.Fatalf("nobody got the lease: %v", errs)
		}
		for i := range nodes {
			if i != winner && infos[i].Holder != "" && infos[i].Holder != fmt.Sprint("node", winner) {
				t.Errorf("node %d sees holder %q, want node%d", i, infos[i].Holder, winner)
			}
		}
		return winner, leases
	}

	w, leases := race(time.Minute)
	if err := leases[w].Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	li, _, err := nodes[0].ReadLease(ctx, "distfiles/x.tar")
	if err != nil || li.Holder != fmt.Sprint("node", w) || time.Until(li.Expires) < 30*time.Second {
		t.Fatalf("lease after renewal: %+v %v", li, err)
	}
	if err := leases[w].Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nodes[0].ReadLease(ctx, "distfiles/x.tar"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lease after release: %v", err)
	}

	// A lease that expires (its holder stopped renewing).
	w, leases = race(time.Second)
	time.Sleep(1500 * time.Millisecond)
	w2, leases2 := race(time.Minute)
	if err := leases[w].Renew(ctx); err == nil {
		t.Fatal("the former holder renewed a lease taken over")
	}
	if err := leases[w].Release(ctx); err != nil {
		t.Fatal(err)
	}
	if li, _, err := nodes[0].ReadLease(ctx, "distfiles/x.tar"); err != nil || li.Holder != fmt.Sprint("node", w2) {
		t.Fatalf("the former holder's release removed the new lease: %+v %v", li, err)
	}
	leases2[w2].Release(ctx)
	// Leases are not objects of the cache.
	if l, err := nodes[0].List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("List shows %v %v", l, err)
	}
}
