package process

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

func TestWriteBulkLoadsGiveTheSameExactAggregates(t *testing.T) {
	for _, tz := range []string{"UTC", "America/Los_Angeles"} {
		t.Run(tz, func(t *testing.T) {
			game := newGame(t, tz)
			p := newProcess(t, DefaultConfig())
			g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(12, 12))}
			evs := g.Players(40, simtest.Traffic{From: time.Now().Add(-96 * time.Hour), Span: 90 * time.Hour})
			all := g.Deliveries(evs, 3)
			// Two concurrent bulk writes of overlapping halves, then all again.
			half := len(all) / 2
			errc := make(chan error, 2)
			go func() { errc <- p.Write(context.Background(), all[:half+50]) }()
			go func() { errc <- p.Write(context.Background(), all[half-50:]) }()
			for range 2 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Write(context.Background(), all); err != nil {
				t.Fatal(err)
			}
			drain(t, p)
			sameAggregates(t, game, evs)
		})
	}
}
