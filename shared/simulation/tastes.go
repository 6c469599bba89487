package simulation

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// CatalogueItem is one item of a simulated game.
type CatalogueItem struct {
	ID string
	// Cluster is the taste cluster the item belongs to.
	Cluster int
	// Blockbuster items are wanted by players of every taste.
	Blockbuster bool
	// IAP items are bought with money (purchase events, Price in USD
	// cents); the others with gold (resource sinks).
	IAP        bool
	Consumable bool
	Price      int64
	// weight is the item's popularity within its cluster.
	weight float64
}

// Catalogue is a simulated game's items, grouped in taste clusters of about
// 40 items with a Zipf-like popularity inside each cluster, plus a few
// blockbusters (1%, at least 3). A quarter of the items are in-app
// purchases, the rest are bought with gold; some of each are consumable.
// Players' tastes (shopper) draw mostly from one or two clusters, so what a
// player bought says what else they will buy: the structure a recommender
// should find and a popularity ranking cannot.
type Catalogue struct {
	Items        []CatalogueItem
	Clusters     int
	seed         uint64
	byCluster    [][2][]int // per cluster: shop items, IAP items
	blockbusters [2][]int
}

// Salts separating the catalogue's and the tastes' random streams from the
// traffic's, so giving a run items changes nothing else it generates.
const (
	catalogueSalt = 0x6361_7461_6c6f_6775
	tasteSalt     = 0x7461_7374_6573_0001
)

var iapPrices = []int64{99, 199, 499, 999, 1999, 4999}

// NewCatalogue returns the catalogue of n items for a seed.
func NewCatalogue(n int, seed uint64) *Catalogue {
	r := rand.New(rand.NewPCG(seed^catalogueSalt, seed))
	c := &Catalogue{Clusters: max(1, n/40), seed: seed}
	c.byCluster = make([][2][]int, c.Clusters)
	blockbusters := max(3, n/100)
	for i := range n {
		it := CatalogueItem{ID: fmt.Sprintf("item-%04d", i), Cluster: i % c.Clusters, IAP: r.Float64() < 0.25}
		it.Blockbuster = i < blockbusters
		rank := i / c.Clusters // position within its cluster
		it.weight = 1 / math.Pow(float64(rank+1), 0.8)
		if it.IAP {
			it.Consumable = r.Float64() < 0.6
			it.Price = iapPrices[r.IntN(len(iapPrices))]
		} else {
			it.Consumable = r.Float64() < 0.2
			it.Price = int64(50 + 50*r.IntN(20))
		}
		kind := 0
		if it.IAP {
			kind = 1
		}
		if it.Blockbuster {
			it.weight = 1
			c.blockbusters[kind] = append(c.blockbusters[kind], i)
		} else {
			c.byCluster[it.Cluster][kind] = append(c.byCluster[it.Cluster][kind], i)
		}
		c.Items = append(c.Items, it)
	}
	return c
}

// Shopper is one player's tastes and what they own. Generate uses it for
// the players' purchases and sinks; benchmarks use it alone to draw the
// acquisitions of many players without the rest of their traffic.
type Shopper struct {
	c                  *Catalogue
	r                  *rand.Rand
	primary, secondary int
	owned              map[int]bool
}

// Shopper returns player n's tastes: a primary and a secondary cluster,
// the primary tied to the player's country (an index) for a third of
// players, so segments differ too. Deterministic by seed and player.
func (c *Catalogue) Shopper(n, country int) *Shopper {
	r := rand.New(rand.NewPCG(c.seed^tasteSalt, uint64(n)))
	s := &Shopper{c: c, r: r, primary: r.IntN(c.Clusters), secondary: r.IntN(c.Clusters), owned: map[int]bool{}}
	if r.Float64() < 0.33 {
		s.primary = (country * 7) % c.Clusters
	}
	return s
}

// Pick chooses what the player buys next (an in-app purchase or a gold
// item): a blockbuster 15% of the time, else from the primary cluster
// (65%), the secondary (25%) or any (10%), by popularity, avoiding
// non-consumables the player owns.
func (s *Shopper) Pick(iap bool) CatalogueItem {
	kind := 0
	if iap {
		kind = 1
	}
	var it int
	for try := 0; ; try++ {
		var pool []int
		switch x := s.r.Float64(); {
		case x < 0.15:
			pool = s.c.blockbusters[kind]
		case x < 0.15+0.85*0.65:
			pool = s.c.byCluster[s.primary][kind]
		case x < 0.15+0.85*0.90:
			pool = s.c.byCluster[s.secondary][kind]
		default:
			pool = s.c.byCluster[s.r.IntN(s.c.Clusters)][kind]
		}
		if len(pool) == 0 {
			pool = s.c.blockbusters[kind]
		}
		if len(pool) == 0 {
			pool = s.c.blockbusters[1-kind]
		}
		it = s.weighted(pool)
		if !s.owned[it] || s.c.Items[it].Consumable || try == 5 {
			break
		}
	}
	if !s.c.Items[it].Consumable {
		s.owned[it] = true
	}
	return s.c.Items[it]
}

func (s *Shopper) weighted(pool []int) int {
	var total float64
	for _, i := range pool {
		total += s.c.Items[i].weight
	}
	x := s.r.Float64() * total
	for _, i := range pool {
		if x -= s.c.Items[i].weight; x < 0 {
			return i
		}
	}
	return pool[len(pool)-1]
}

// WriteCSV writes the catalogue in the form `gamemetrics items import`
// reads.
func (c *Catalogue) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"item_id", "consumable", "available", "tags", "price_minor", "currency"})
	for _, it := range c.Items {
		tags, currency := fmt.Sprintf("cluster-%d", it.Cluster), "gold"
		if it.IAP {
			tags, currency = tags+"|iap", "USD"
		}
		if it.Blockbuster {
			tags += "|blockbuster"
		}
		cw.Write([]string{it.ID, strconv.FormatBool(it.Consumable), "true", tags, strconv.FormatInt(it.Price, 10), currency})
	}
	cw.Flush()
	return cw.Error()
}
