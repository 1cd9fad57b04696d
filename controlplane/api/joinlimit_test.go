package api

import (
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/auth"
)

func TestJoinLimiterBucketsAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewJoinLimiter(60, 2, 3) // one attempt a second, bursts of 2
	l.lim.SetClock(func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 2; i++ {
		failed, err := l.begin(a)
		if err != nil {
			t.Fatalf("attempt %d refused: %v", i+1, err)
		}
		failed()
	}
	if _, err := l.begin(a); status.Code(err) != codes.ResourceExhausted || auth.RetryAfter(err) <= 0 || auth.RetryAfter(err) > time.Second {
		t.Fatalf("third failed attempt: %v, retry %s", err, auth.RetryAfter(err))
	}
	// Successes cost nothing; the bucket refills with time.
	now = now.Add(time.Second)
	for i := 0; i < 5; i++ {
		if _, err := l.begin(a); err != nil {
			t.Fatalf("attempt after a second refused: %v", err)
		}
	}
	// One IPv6 /64 is one bucket.
	v6 := netip.MustParseAddr("2001:db8::1")
	failed, _ := l.begin(v6)
	failed()
	failed, _ = l.begin(netip.MustParseAddr("2001:db8::2"))
	failed()
	if _, err := l.begin(netip.MustParseAddr("2001:db8::ffff")); err == nil {
		t.Fatal("another address of the same /64 has its own bucket")
	}
	// The addresses remembered are bounded.
	for i := 0; i < 100; i++ {
		l.begin(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		if n := l.lim.Remembered(); n > 3 {
			t.Fatalf("%d addresses remembered, bound 3", n)
		}
	}
}
