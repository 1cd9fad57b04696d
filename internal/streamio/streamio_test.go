package streamio

import (
	"errors"
	"io"
	"testing"
)

func TestReader(t *testing.T) {
	chunks := [][]byte{[]byte("lo, "), {}, []byte("world")}
	i := 0
	r := Reader([]byte("hel"), func() ([]byte, error) {
		if i == len(chunks) {
			return nil, io.EOF
		}
		i++
		return chunks[i-1], nil
	})
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}

	boom := errors.New("boom")
	r = Reader(nil, func() ([]byte, error) { return nil, boom })
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Fatalf("error = %v, want boom", err)
	}
}
