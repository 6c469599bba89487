package cache

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// ErasePlayer removes player from game's live view: their member of the
// online set and of every day's active set. It returns how many members it
// removed. Events-per-minute counts hold no player and are kept.
func (l *Live) ErasePlayer(ctx context.Context, game, player string) (int64, error) {
	removed, err := l.rdb.ZRem(ctx, onlineKey(game), player).Result()
	if err != nil {
		return 0, err
	}
	var keys []string
	iter := l.rdb.Scan(ctx, 0, "gm:live:"+game+":active:*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return removed, err
	}
	if len(keys) == 0 {
		return removed, nil
	}
	cmds, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.SRem(ctx, k, player)
		}
		return nil
	})
	if err != nil {
		return removed, err
	}
	for _, c := range cmds {
		removed += c.(*redis.IntCmd).Val()
	}
	return removed, nil
}
