package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/klauspost/compress/gzip"
)

// The archive format of raw events: each part object is gzip-compressed
// NDJSON, one CloudEvent per line in the structured JSON form
// (application/cloudevents+json), so any CloudEvents library, jq or a data
// lake engine reads it without GameMetrics.

// Limits of the decoder, which parses stored (so outside) input.
const (
	// MaxLineBytes bounds one line; ingest accepts events of up to 32 KiB,
	// so a longer line is not an archived event.
	MaxLineBytes = 1 << 20
	// MaxPartBytes bounds the decompressed size of one part.
	MaxPartBytes = 4 << 30
)

// ContentType of part objects.
const ContentType = "application/x-ndjson"

// PartWriter encodes events into one gzip NDJSON part in memory.
type PartWriter struct {
	buf   bytes.Buffer
	gz    *gzip.Writer
	line  []byte
	count int64
	raw   int64
}

// NewPartWriter starts an empty part.
func NewPartWriter() *PartWriter {
	w := &PartWriter{}
	w.gz, _ = gzip.NewWriterLevel(&w.buf, gzip.BestSpeed)
	return w
}

// Add appends e as one line.
func (w *PartWriter) Add(e *event.Event) error {
	// The SDK's own encoder, without encoding/json's re-validation and
	// compaction of its output (a fifth of the export's CPU): JSON data is
	// checked on its own, and only a line that came out with a newline (data
	// with line breaks in its whitespace) is compacted.
	if d := e.Data(); len(d) > 0 && !e.DataBase64 && isJSONContent(e.DataContentType()) && !json.Valid(d) {
		return fmt.Errorf("archive: event %q: data is not valid JSON", e.ID())
	}
	line, err := e.MarshalJSON()
	if err != nil {
		return fmt.Errorf("archive: encode event %q: %w", e.ID(), err)
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, line); err != nil {
			return fmt.Errorf("archive: encode event %q: %w", e.ID(), err)
		}
		line = buf.Bytes()
	}
	return w.AddLine(line)
}

func isJSONContent(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	return ct == "" || ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// AddLine appends one already encoded structured CloudEvent (no newline).
func (w *PartWriter) AddLine(line []byte) error {
	w.line = append(append(w.line[:0], line...), '\n')
	if _, err := w.gz.Write(w.line); err != nil {
		return err
	}
	w.count++
	w.raw += int64(len(w.line))
	return nil
}

// Count is the number of events added so far.
func (w *PartWriter) Count() int64 { return w.count }

// RawBytes is the uncompressed size added so far.
func (w *PartWriter) RawBytes() int64 { return w.raw }

// Finish closes the part and returns its bytes and their description (Key
// is left for the caller). The writer must not be used afterwards.
func (w *PartWriter) Finish() ([]byte, Part, error) {
	if err := w.gz.Close(); err != nil {
		return nil, Part{}, err
	}
	b := w.buf.Bytes()
	return b, Part{Events: w.count, Bytes: int64(len(b)), SHA256: Checksum(b)}, nil
}

// Checksum is the hex SHA-256 of b, as manifests record it.
func Checksum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// EncodePart encodes events into one part.
func EncodePart(events []event.Event) ([]byte, Part, error) {
	w := NewPartWriter()
	for i := range events {
		if err := w.Add(&events[i]); err != nil {
			return nil, Part{}, err
		}
	}
	return w.Finish()
}

// DecodePart decompresses and decodes a whole part.
func DecodePart(b []byte) ([]event.Event, error) {
	var out []event.Event
	err := ReadPart(bytes.NewReader(b), func(e event.Event) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// ReadPart decompresses a part from r and calls fn with each event in order.
func ReadPart(r io.Reader, fn func(event.Event) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("archive: not a gzip part: %w", err)
	}
	defer gz.Close()
	return DecodeNDJSON(io.LimitReader(gz, MaxPartBytes+1), fn)
}

// DecodeNDJSON reads structured CloudEvents, one per line, and calls fn
// with each in order. Empty lines are skipped. Every event must be valid
// CloudEvents 1.0 (id, source, type, specversion); an invalid line fails
// the whole decode with its line number.
func DecodeNDJSON(r io.Reader, fn func(event.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	n := 0
	var total int64
	for sc.Scan() {
		n++
		line := sc.Bytes()
		total += int64(len(line)) + 1
		if total > MaxPartBytes {
			return fmt.Errorf("archive: part larger than %d bytes", int64(MaxPartBytes))
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e, err := DecodeEvent(line)
		if err != nil {
			return fmt.Errorf("archive: line %d: %w", n, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("archive: line %d longer than %d bytes", n+1, MaxLineBytes)
		}
		return fmt.Errorf("archive: read: %w", err)
	}
	return nil
}

// DecodeEvent parses one structured CloudEvent and checks it is valid.
func DecodeEvent(line []byte) (event.Event, error) {
	if !utf8.Valid(line) {
		// The encoder only writes UTF-8; anything else was not written by it.
		return event.Event{}, errors.New("not UTF-8")
	}
	var e event.Event
	if err := json.Unmarshal(line, &e); err != nil {
		return event.Event{}, fmt.Errorf("not a structured CloudEvent: %w", err)
	}
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return e, nil
}

// CountLines counts the non-empty lines of a part without decoding them,
// for verifying an uploaded part cheaply (its checksum proves the bytes).
func CountLines(b []byte) (int64, error) {
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("archive: not a gzip part: %w", err)
	}
	defer gz.Close()
	var n int64
	buf := make([]byte, 256<<10)
	nonEmpty := false
	for {
		k, err := gz.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' {
				if nonEmpty {
					n++
				}
				nonEmpty = false
			} else if c != ' ' && c != '\r' && c != '\t' {
				nonEmpty = true
			}
		}
		if err == io.EOF {
			if nonEmpty {
				n++
			}
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("archive: read part: %w", err)
		}
	}
}
