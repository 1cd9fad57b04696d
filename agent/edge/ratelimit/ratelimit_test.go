package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	l := New(1, 2, 0)
	now := time.Unix(100, 0)
	for i := 0; i < 2; i++ {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, d := l.Allow("a", now)
	if ok || d <= 0 || d > time.Second {
		t.Fatalf("third request: %v, retry after %v", ok, d)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("another client shares the bucket")
	}
	if ok, _ := l.Allow("a", now.Add(time.Second)); !ok {
		t.Fatal("no refill after a second")
	}
}

func TestBounded(t *testing.T) {
	l := New(10, 10, 100)
	now := time.Unix(100, 0)
	for i := 0; i < 1000; i++ {
		l.Allow(fmt.Sprint(i), now.Add(time.Duration(i)*time.Millisecond))
		if n := l.Len(); n > 100 {
			t.Fatalf("%d buckets kept, max 100", n)
		}
	}
}
