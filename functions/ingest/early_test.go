package ingest_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Clients that send the whole body before reading the answer (Python's
// urllib and requests, many game engines) must get the answer, not a
// connection reset, when ingest refuses the request before reading the body.
// The client here is a raw connection that writes the whole request, then
// reads.
func TestClientsThatWriteTheWholeBodyFirstReadTheRefusal(t *testing.T) {
	e := newEnv(t)
	u, _ := url.Parse(e.url)
	big := bytes.Repeat([]byte(" "), 8<<20) // more than the kernel buffers between the two
	chunked := func(body []byte) []byte {
		var b bytes.Buffer
		for len(body) > 0 {
			n := min(len(body), 64<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		b.WriteString("0\r\n\r\n")
		return b.Bytes()
	}
	tests := []struct {
		name    string
		headers string
		body    []byte
		want    int
		reason  string
	}{
		{"declared length over 1 MiB", "Content-Type: application/cloudevents-batch+json\r\nContent-Length: " + fmt.Sprint(len(big)) + "\r\n",
			big, http.StatusRequestEntityTooLarge, "limit"},
		{"chunked body over 1 MiB", "Content-Type: application/cloudevents-batch+json\r\nTransfer-Encoding: chunked\r\n",
			chunked(big), http.StatusRequestEntityTooLarge, "over"},
		{"unknown write key with a large body", "Content-Type: application/cloudevents-batch+json\r\nContent-Length: " + fmt.Sprint(len(big)) + "\r\nX-Key: bad\r\n",
			big, http.StatusUnauthorized, "write key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			auth := "Bearer " + e.keys.Write
			if strings.Contains(tt.headers, "X-Key: bad") {
				auth = "Bearer gmw_unknown"
			}
			req := "POST / HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: " + auth + "\r\n" + tt.headers + "\r\n"
			if _, err := conn.Write(append([]byte(req), tt.body...)); err != nil {
				t.Fatalf("writing the request: %v (the server reset the connection instead of reading it)", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.reason) {
				t.Errorf("got %d %s, want %d mentioning %q", resp.StatusCode, b, tt.want, tt.reason)
			}
		})
	}
}
