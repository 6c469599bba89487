package process

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestDuplicatedShuffledConcurrentDeliveriesGiveExactAggregates(t *testing.T) {
	for _, tz := range []string{"UTC", "America/Los_Angeles", "Asia/Kolkata"} {
		t.Run(tz, func(t *testing.T) {
			game := newGame(t, tz)
			p := newProcess(t, DefaultConfig())
			url := httpServer(t, p)
			rng := rand.New(rand.NewPCG(1, uint64(len(tz))))
			g := &gen{rng: rng, game: game.ID}
			evs := g.players(40, time.Now().Add(-72*time.Hour), 70*time.Hour)
			deliverAll(t, url, deliveries(rng, evs, 5), 32)
			sameAggregates(t, game, evs)
		})
	}
}
