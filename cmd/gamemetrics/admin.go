package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func runMigrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	pool, err := store.Open(ctx, getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := store.Migrate(ctx, pool)
	for _, name := range applied {
		fmt.Fprintln(stdout, "applied", name)
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
	}
	return nil
}

func runGames(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("games: want a subcommand: create, list, set-timezone, set-retention, rotate-key")
	}
	pool, err := store.Open(ctx, getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	games := store.NewGames(pool)
	switch args[0] {
	case "create":
		fs := newFlags("games create", stderr)
		name := fs.String("name", "", "game name (required)")
		tz := fs.String("timezone", "UTC", "IANA time zone that decides the game's day boundaries")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return errors.New("games create: --name is required")
		}
		g, keys, err := games.Create(ctx, *name, *tz)
		if err != nil {
			return err
		}
		printGame(stdout, g, keys)
		return nil
	case "set-timezone":
		return runGamesSetTimezone(ctx, pool, args[1:], stdout, stderr)
	case "set-retention":
		return runSetRetention(ctx, games, args[1:], stdout, stderr)
	case "rotate-key":
		return runRotateKey(ctx, games, args[1:], stdout, stderr)
	case "list":
		list, err := games.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTIMEZONE\tHOT DAYS\tARCHIVE DAYS\tCREATED")
		for _, g := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", g.ID, g.Name, g.Timezone, g.HotDays, g.ArchiveDays, g.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("games: unknown subcommand %q", args[0])
	}
}

// runRotateKey replaces a game's write or read key.
func runRotateKey(ctx context.Context, games *store.Games, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("games rotate-key", stderr)
	game := fs.String("game", "", "game id (required)")
	kind := fs.String("kind", "", "which key: write (game clients), read (analysts) or admin (alert rules, destinations, items) (required)")
	grace := fs.Duration("grace", 0, "how long the previous key keeps working, e.g. 720h while players update the game; 0 revokes it now")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *game == "" || *kind == "" {
		return errors.New("games rotate-key: --game and --kind (write, read or admin) are required")
	}
	rot, err := games.RotateKey(ctx, *game, *kind, *grace)
	if err != nil {
		return fmt.Errorf("games rotate-key: %w", err)
	}
	fmt.Fprintf(stdout, "game %s: new %s key: %s\n", *game, *kind, rot.Key)
	if *grace == 0 {
		fmt.Fprintln(stdout, "The previous key is revoked (functions that cached it stop accepting it within 30 s).")
	} else {
		fmt.Fprintf(stdout, "The previous key keeps working until %s.\n", rot.PreviousUntil.Format(time.RFC3339))
	}
	fmt.Fprintln(stdout, "Keys are stored hashed: keep this one now, it cannot be shown again.")
	return nil
}

func printGame(w io.Writer, g store.Game, keys store.Keys) {
	fmt.Fprintf(w, "game id:   %s\nname:      %s\ntimezone:  %s\nwrite key: %s\nread key:  %s\nadmin key: %s\n",
		g.ID, g.Name, g.Timezone, keys.Write, keys.Read, keys.Admin)
	fmt.Fprintln(w, "Keys are stored hashed: keep them now, they cannot be shown again.")
}

// runEvents prints the newest records of a topic, headers included, so an
// operator can see exactly what ingest wrote.
func runEvents(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "replay" {
		return runReplay(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) == 0 || args[0] != "tail" {
		return errors.New("events: want a subcommand: tail, replay")
	}
	fs := newFlags("events tail", stderr)
	topic := fs.String("topic", kafka.TopicEvents, "topic to read")
	n := fs.Int("n", 10, "records to print per partition, newest last")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cl, err := kafka.ClientFromEnv(getenv)
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, *topic)
	if err != nil {
		return err
	}
	starts := map[string]map[int32]kgo.Offset{*topic: {}}
	want := 0
	ends.Each(func(o kadm.ListedOffset) {
		from := max(0, o.Offset-int64(*n))
		want += int(o.Offset - from)
		starts[*topic][o.Partition] = kgo.NewOffset().At(from)
	})
	if want == 0 {
		fmt.Fprintf(stdout, "%s is empty\n", *topic)
		return nil
	}
	cl.AddConsumePartitions(starts)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for got := 0; got < want; {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %d of %d records: %w", got, want, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			fmt.Fprintf(stdout, "%s/%d@%d key=%s\n", r.Topic, r.Partition, r.Offset, r.Key)
			for _, h := range r.Headers {
				fmt.Fprintf(stdout, "  %s: %s\n", h.Key, h.Value)
			}
			fmt.Fprintf(stdout, "  value: %s\n", strings.TrimSpace(string(r.Value)))
		})
	}
	return nil
}
