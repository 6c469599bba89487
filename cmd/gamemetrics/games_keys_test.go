package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// A leaked or shipped key is replaced: with a grace period both keys work
// until it ends; without one the old key stops at once.
func TestGamesRotateKeyKeepsTheOldKeyForTheGraceThenRevokesIt(t *testing.T) {
	ctx := migrated(t)
	getenv := stack.Getenv
	var out, errb bytes.Buffer
	games := store.NewGames(devstacktest.Connect(t, stack).Pool)
	g, first, err := games.Create(ctx, "rotate", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	newKey := regexp.MustCompile(`new (write|read|admin) key: (\S+)`)
	rotate := func(args ...string) string {
		t.Helper()
		out.Reset()
		if err := run(ctx, append([]string{"games", "rotate-key", "--game", g.ID}, args...), getenv, &out, &errb); err != nil {
			t.Fatalf("rotate-key %v: %v", args, err)
		}
		m := newKey.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no new key in %q", out.String())
		}
		return m[2]
	}
	works := func(lookup func(context.Context, string) (store.Game, error), key string) bool {
		t.Helper()
		got, err := lookup(ctx, key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil && got.ID == g.ID
	}

	second := rotate("--kind", "write", "--grace", "1h")
	if !strings.HasPrefix(second, store.WriteKeyPrefix) || !strings.Contains(out.String(), "keeps working until") {
		t.Errorf("output %q", out.String())
	}
	if !works(games.ByWriteKey, first.Write) || !works(games.ByWriteKey, second) {
		t.Error("during the grace period both write keys must work")
	}
	third := rotate("--kind", "write")
	if !strings.Contains(out.String(), "revoked") {
		t.Errorf("output %q", out.String())
	}
	if works(games.ByWriteKey, first.Write) || works(games.ByWriteKey, second) || !works(games.ByWriteKey, third) {
		t.Error("after a rotation without grace only the newest write key may work")
	}
	if !works(games.ByReadKey, first.Read) {
		t.Error("rotating the write key changed the read key")
	}
	read := rotate("--kind", "read")
	if works(games.ByReadKey, first.Read) || !works(games.ByReadKey, read) || works(games.ByWriteKey, read) {
		t.Error("read key rotation: only the new read key may read, and it is no write key")
	}
	if !works(games.ByAdminKey, first.Admin) || works(games.ByAdminKey, first.Read) || works(games.ByReadKey, first.Admin) {
		t.Error("the admin key must manage the game and be neither a read key nor taken for one")
	}
	admin := rotate("--kind", "admin")
	if !strings.HasPrefix(admin, store.AdminKeyPrefix) || works(games.ByAdminKey, first.Admin) || !works(games.ByAdminKey, admin) ||
		works(games.ByWriteKey, admin) || works(games.ByReadKey, admin) {
		t.Error("admin key rotation: only the new admin key may manage the game, and it neither writes nor reads")
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"the kind is required", []string{"--game", g.ID}, "--game and --kind"},
		{"the kind is write, read or admin", []string{"--game", g.ID, "--kind", "owner"}, `key kind "owner"`},
		{"the grace is not negative", []string{"--game", g.ID, "--kind", "read", "--grace", "-1h"}, "want 0 or more"},
		{"the game must exist", []string{"--game", "gnope", "--kind", "write"}, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(ctx, append([]string{"games", "rotate-key"}, tc.args...), getenv, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
