package api

import (
	"net/netip"
	"testing"
	"time"
)

func TestJoinLimiterBucketsAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewJoinLimiter(60, 2, 3) // one attempt a second, bursts of 2
	l.now = func() time.Time { return now }
	a := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 2; i++ {
		failed, _, ok := l.begin(a)
		if !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		failed()
	}
	if _, retry, ok := l.begin(a); ok || retry <= 0 || retry > time.Second {
		t.Fatalf("third failed attempt: ok %v, retry %s", ok, retry)
	}
	// Successes cost nothing; the bucket refills with time.
	now = now.Add(time.Second)
	for i := 0; i < 5; i++ {
		if _, _, ok := l.begin(a); !ok {
			t.Fatalf("attempt after a second refused")
		}
	}
	// One IPv6 /64 is one bucket.
	v6 := netip.MustParseAddr("2001:db8::1")
	failed, _, _ := l.begin(v6)
	failed()
	failed, _, _ = l.begin(netip.MustParseAddr("2001:db8::2"))
	failed()
	if _, _, ok := l.begin(netip.MustParseAddr("2001:db8::ffff")); ok {
		t.Fatal("another address of the same /64 has its own bucket")
	}
	// The addresses remembered are bounded.
	for i := 0; i < 100; i++ {
		l.begin(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		if n := len(l.addrs); n > 3 {
			t.Fatalf("%d addresses remembered, bound 3", n)
		}
	}
}
