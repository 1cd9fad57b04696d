// Package wstest speaks just enough WebSocket (RFC 6455) for tests of
// proxies: an echo server, a client handshake over a raw connection, and
// single-frame reads and writes (payloads under 64 KiB).
package wstest

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Opcodes of the frames the tests use.
const (
	OpText  byte = 0x1
	OpClose byte = 0x8
)

// Key is the handshake key the client sends; Accept is the answer RFC 6455
// requires for it.
const (
	Key    = "dGhlIHNhbXBsZSBub25jZQ=="
	Accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// accept computes the Sec-WebSocket-Accept of a key.
func accept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Echo is an echo server: every frame goes back unmasked until a close.
// Plain HTTP gets 400 "websocket only".
func Echo(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "websocket only", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept(r.Header.Get("Sec-WebSocket-Key")))
	brw.Flush()
	for {
		op, payload, err := ReadFrame(brw.Reader)
		if err != nil || op == OpClose {
			return
		}
		WriteFrame(conn, op, payload, nil)
	}
}

// Handshake upgrades conn with a GET of path for host and returns the
// reader to read frames from; an answer other than 101 with the right
// accept is an error.
func Handshake(conn net.Conn, host, path string) (*bufio.Reader, error) {
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host, Key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != Accept {
		return nil, fmt.Errorf("handshake: %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return br, nil
}

// ReadFrame reads one frame, unmasking it.
func ReadFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		return 0, nil, errors.New("wstest: frame too big")
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range p {
			p[i] ^= mask[i%4]
		}
	}
	return h[0] & 0x0f, p, nil
}

// WriteFrame writes one final frame, masked when mask is set (a client
// must mask).
func WriteFrame(w io.Writer, op byte, p []byte, mask []byte) error {
	b := []byte{0x80 | op, 0}
	if len(p) < 126 {
		b[1] = byte(len(p))
	} else {
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	}
	if mask != nil {
		b[1] |= 0x80
		b = append(b, mask...)
		q := make([]byte, len(p))
		for i := range p {
			q[i] = p[i] ^ mask[i%4]
		}
		p = q
	}
	_, err := w.Write(append(b, p...))
	return err
}
