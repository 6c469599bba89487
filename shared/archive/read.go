package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ReadManifest returns game's committed archive of the UTC day of day, or nil
// if there is none.
func (c *Client) ReadManifest(ctx context.Context, game string, day time.Time) (*Manifest, error) {
	b, err := c.Get(ctx, ManifestKey(game, day))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestKey(game, day), err)
	}
	if m.Game != game || m.Date != FormatDay(day) {
		return nil, fmt.Errorf("%s describes game %s day %s", ManifestKey(game, day), m.Game, m.Date)
	}
	return &m, nil
}

// ReadEvents calls fn with every event of m's parts, in order, each part
// checked against the manifest's checksum and count before its first event.
func (c *Client) ReadEvents(ctx context.Context, m *Manifest, fn func(event.Event) error) error {
	for _, p := range m.Parts {
		b, err := c.Get(ctx, p.Key)
		if err != nil {
			return err
		}
		if sum := Checksum(b); sum != p.SHA256 {
			return fmt.Errorf("%s: SHA-256 %s, manifest says %s", p.Key, sum, p.SHA256)
		}
		var n int64
		err = ReadPart(bytes.NewReader(b), func(e event.Event) error {
			n++
			return fn(e)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", p.Key, err)
		}
		if n != p.Events {
			return fmt.Errorf("%s: %d events, manifest says %d", p.Key, n, p.Events)
		}
	}
	return nil
}
