package recommend

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// bumpVersion tells every replica that the game's items or settings
// changed: requests compare it with what they cached.
const bumpVersion = `INSERT INTO recommend_games AS g (gameid, version) VALUES ($1, 1)
ON CONFLICT (gameid) DO UPDATE SET version = g.version + 1, updated_at = now()`

const upsertItems = `INSERT INTO recommend_items AS t
	(gameid, item_id, consumable, available, tags, price_minor, currency, from_catalogue, updated_at)
SELECT $1, x.item_id, x.consumable, x.available,
	coalesce(ARRAY(SELECT jsonb_array_elements_text(x.tags)), '{}'), x.price_minor, nullif(x.currency, ''), true, now()
FROM jsonb_to_recordset($2::jsonb) AS x(item_id text, consumable boolean, available boolean, tags jsonb, price_minor bigint, currency text)
ORDER BY x.item_id COLLATE "C"
ON CONFLICT (gameid, item_id) DO UPDATE SET consumable = excluded.consumable, available = excluded.available,
	tags = excluded.tags, price_minor = excluded.price_minor, currency = excluded.currency,
	from_catalogue = true, updated_at = now()
RETURNING xmax = 0`

// putItems creates or replaces the given items (others are unchanged) and
// returns how many were new.
func (r *Recommend) putItems(ctx context.Context, game string, items []Item) (int, error) {
	doc, err := json.Marshal(items)
	if err != nil {
		return 0, err
	}
	created := 0
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, upsertItems, game, doc)
		if err != nil {
			return err
		}
		fresh, err := pgx.CollectRows(rows, pgx.RowTo[bool])
		if err != nil {
			return fmt.Errorf("store items: %w", err)
		}
		for _, f := range fresh {
			if f {
				created++
			}
		}
		_, err = tx.Exec(ctx, bumpVersion, game)
		return err
	})
	return created, err
}

// listItems returns the game's catalogue, by item id.
func (r *Recommend) listItems(ctx context.Context, game string) ([]Item, error) {
	rows, err := r.pool.Query(ctx, `SELECT item_id, consumable, available, tags, price_minor, coalesce(currency, ''), from_catalogue
		FROM recommend_items WHERE gameid = $1 ORDER BY item_id COLLATE "C"`, game)
	if err != nil {
		return nil, err
	}
	items := []Item{}
	var it Item
	if _, err := pgx.ForEachRow(rows, []any{&it.ID, &it.Consumable, &it.Available, &it.Tags, &it.PriceMinor, &it.Currency, &it.FromCatalogue}, func() error {
		c := it
		c.Tags = slices.Clone(it.Tags)
		if it.Consumable != nil {
			v := *it.Consumable
			c.Consumable = &v
		}
		if it.PriceMinor != nil {
			v := *it.PriceMinor
			c.PriceMinor = &v
		}
		items = append(items, c)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	return items, nil
}

// putSettings stores a game's settings.
func (r *Recommend) putSettings(ctx context.Context, game string, s Settings) error {
	doc, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = r.pool.Exec(ctx, `INSERT INTO recommend_games AS g (gameid, settings, version) VALUES ($1, $2, 1)
		ON CONFLICT (gameid) DO UPDATE SET settings = excluded.settings, version = g.version + 1, updated_at = now()`, game, doc)
	if err == nil {
		r.intakeMu.Lock()
		delete(r.intakeCache, game)
		r.intakeMu.Unlock()
	}
	return err
}
