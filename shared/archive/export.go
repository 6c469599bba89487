package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/shared/store"
)

// ErrNoArchive means a day's events are archived but no S3 client was given
// to read them.
var ErrNoArchive = errors.New("the day is archived and no S3 archive is configured")

// WriteDay writes every raw event of game on the UTC day (as stored, one
// per id) to w as NDJSON structured CloudEvents, the archive's format: from
// PostgreSQL while the day is hot, from its S3 archive once retain has
// archived it, and from both while a day is in between (archived but its
// partition not dropped yet, or late events since the archive). It returns
// how many events it wrote. arc may be nil when no day is archived.
func WriteDay(ctx context.Context, pool *pgxpool.Pool, arc *Client, game string, day time.Time, w io.Writer) (int64, error) {
	day = day.UTC().Truncate(24 * time.Hour)
	var hot bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", store.EventPartition(game, day)).Scan(&hot); err != nil {
		return 0, err
	}
	var m *Manifest
	if arc != nil {
		var err error
		if m, err = arc.ReadManifest(ctx, game, day); err != nil {
			return 0, fmt.Errorf("archive of %s: %w", FormatDay(day), err)
		}
	} else if !hot {
		// Without S3 an archived day cannot be told from an empty one:
		// say so only if retain ever archived this game.
		var archived bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM event_ids WHERE gameid = $1 AND day = $2)`, game, day).Scan(&archived); err != nil {
			return 0, err
		}
		if archived {
			return 0, ErrNoArchive
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	written := map[string]bool{} // ids from PostgreSQL, kept only when an archive follows
	if hot {
		rows, err := pool.Query(ctx, "SELECT "+RowColumns+" FROM "+pgx.Identifier{store.EventPartition(game, day)}.Sanitize()+" ORDER BY time, id")
		if err != nil {
			return 0, err
		}
		var r Row
		var line []byte
		_, err = pgx.ForEachRow(rows, r.ScanTargets(), func() error {
			var err error
			if line, err = r.AppendJSON(line[:0], game); err != nil {
				return err
			}
			if m != nil {
				written[r.ID] = true
			}
			n++
			_, err = bw.Write(append(line, '\n'))
			return err
		})
		if err != nil {
			return n, err
		}
	}
	if m != nil {
		err := arc.ReadEvents(ctx, m, func(e event.Event) error {
			if written[e.ID()] {
				return nil
			}
			b, err := e.MarshalJSON()
			if err != nil {
				return err
			}
			n++
			_, err = bw.Write(append(b, '\n'))
			return err
		})
		if err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}
