package retain

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"golang.org/x/sync/errgroup"

	"github.com/gamemetrics/gamemetrics/shared/archive"
)

// dayObjects are the stored objects of one game's archived day.
type dayObjects struct {
	day      time.Time
	manifest bool
	parts    []string // every part key found, listed or not
	maxPart  int      // highest part number found, -1 if none
}

// listArchive groups the objects of game's archive by day.
func (r *Retain) listArchive(ctx context.Context, game string) (map[time.Time]*dayObjects, error) {
	objs, err := r.arc.List(ctx, archive.GamePrefix(game))
	if err != nil {
		return nil, err
	}
	days := map[time.Time]*dayObjects{}
	for _, o := range objs {
		k, err := archive.ParseKey(o.Key)
		if err != nil || k.Game != game {
			r.log.Warn("unexpected object in the archive, left alone", "key", o.Key)
			continue
		}
		d := days[k.Day]
		if d == nil {
			d = &dayObjects{day: k.Day, maxPart: -1}
			days[k.Day] = d
		}
		switch {
		case k.Manifest:
			d.manifest = true
		case k.Part >= 0:
			d.parts = append(d.parts, o.Key)
			d.maxPart = max(d.maxPart, k.Part)
		default:
			r.log.Warn("unexpected object in the archive, left alone", "key", o.Key)
		}
	}
	return days, nil
}

// sortedDays returns the days of m in order.
func sortedDays[V any](m map[time.Time]V) []time.Time {
	days := make([]time.Time, 0, len(m))
	for d := range m {
		days = append(days, d)
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Before(days[j]) })
	return days
}

// dayWriter writes a new generation of one day's archive: parts numbered
// from next on, each uploaded and read back in the background while the
// next is encoded, then the manifest.
type dayWriter struct {
	r      *Retain
	ctx    context.Context // uploads; cancelled when the group is done
	parent context.Context
	game   string
	day    time.Time
	next   int

	cur   *archive.PartWriter
	parts []archive.Part
	g     *errgroup.Group
}

func (r *Retain) newDayWriter(ctx context.Context, game string, day time.Time, next int) *dayWriter {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Uploads)
	return &dayWriter{r: r, ctx: gctx, parent: ctx, game: game, day: day, next: next, g: g}
}

func (w *dayWriter) add(e *event.Event) error {
	if w.cur == nil {
		w.cur = archive.NewPartWriter()
	}
	if err := w.cur.Add(e); err != nil {
		return err
	}
	return w.added()
}

// addLine adds an already encoded structured CloudEvent.
func (w *dayWriter) addLine(line []byte) error {
	if w.cur == nil {
		w.cur = archive.NewPartWriter()
	}
	if err := w.cur.AddLine(line); err != nil {
		return err
	}
	return w.added()
}

func (w *dayWriter) added() error {
	if w.cur.Count() >= int64(w.r.cfg.PartEvents) {
		return w.flush()
	}
	return nil
}

// events is the number of events added so far.
func (w *dayWriter) events() int64 {
	var n int64
	for _, p := range w.parts {
		n += p.Events
	}
	if w.cur != nil {
		n += w.cur.Count()
	}
	return n
}

func (w *dayWriter) flush() error {
	if w.cur == nil || w.cur.Count() == 0 {
		return nil
	}
	b, p, err := w.cur.Finish()
	w.cur = nil
	if err != nil {
		return err
	}
	p.Key = archive.PartKey(w.game, w.day, w.next)
	w.next++
	w.parts = append(w.parts, p)
	if err := w.ctx.Err(); err != nil {
		return w.g.Wait()
	}
	w.g.Go(func() error {
		if err := w.r.arc.Put(w.ctx, p.Key, b, archive.ContentType); err != nil {
			return err
		}
		if err := w.r.verifyPart(w.ctx, p); err != nil {
			return err
		}
		w.r.metrics.bytesArchived.Add(float64(p.Bytes))
		return nil
	})
	return nil
}

// commit uploads what is left, waits until every part is verified, and
// writes the manifest: from then on this generation is the day's archive.
// fault is the fault point between the verified upload and the manifest.
func (w *dayWriter) commit(fault string) (archive.Manifest, error) {
	if err := w.flush(); err != nil {
		w.g.Wait()
		return archive.Manifest{}, err
	}
	if err := w.g.Wait(); err != nil {
		return archive.Manifest{}, err
	}
	if err := w.r.checkpoint(fault); err != nil {
		return archive.Manifest{}, err
	}
	m := archive.NewManifest(w.game, w.day, w.parts, w.r.now())
	if err := w.r.arc.Put(w.parent, archive.ManifestKey(w.game, w.day), m.Encode(), "application/json"); err != nil {
		return archive.Manifest{}, err
	}
	// Read the commit back: a manifest that did not land is no commit.
	got, err := w.r.arc.ReadManifest(w.parent, w.game, w.day)
	if err != nil {
		return archive.Manifest{}, err
	}
	if got == nil || got.Events != m.Events || len(got.Parts) != len(m.Parts) || (len(m.Parts) > 0 && got.Parts[len(got.Parts)-1] != m.Parts[len(m.Parts)-1]) {
		return archive.Manifest{}, fmt.Errorf("%s: read back differs from what was written", archive.ManifestKey(w.game, w.day))
	}
	return m, nil
}

// abandon waits for uploads in flight; their parts are listed by no
// manifest and are deleted by a later run.
func (w *dayWriter) abandon() { w.g.Wait() }

// verifyPart reads an uploaded part back and checks its checksum and count.
func (r *Retain) verifyPart(ctx context.Context, p archive.Part) error {
	b, err := r.arc.Get(ctx, p.Key)
	if err != nil {
		return fmt.Errorf("verify %s: %w", p.Key, err)
	}
	if sum := archive.Checksum(b); sum != p.SHA256 {
		return fmt.Errorf("verify %s: SHA-256 %s, expected %s", p.Key, sum, p.SHA256)
	}
	n, err := archive.CountLines(b)
	if err != nil {
		return fmt.Errorf("verify %s: %w", p.Key, err)
	}
	if n != p.Events {
		return fmt.Errorf("verify %s: %d events read back, %d written", p.Key, n, p.Events)
	}
	return nil
}

// deleteUnlisted deletes the parts of a day that manifest m does not list
// (the previous generation, or leftovers of an interrupted run). m nil
// means no manifest: every part is uncommitted.
func (r *Retain) deleteUnlisted(ctx context.Context, game string, day time.Time, m *archive.Manifest) (int, error) {
	objs, err := r.arc.List(ctx, archive.DayPrefix(game, day))
	if err != nil {
		return 0, err
	}
	var keep map[string]bool
	if m != nil {
		keep = m.Keys()
	}
	var del []string
	for _, o := range objs {
		k, err := archive.ParseKey(o.Key)
		if err != nil || k.Manifest || k.Part < 0 || keep[o.Key] {
			continue
		}
		del = append(del, o.Key)
	}
	if len(del) == 0 {
		return 0, nil
	}
	return len(del), r.arc.Delete(ctx, del...)
}
