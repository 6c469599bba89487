package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func TestGamesSetTimezoneChangesTheZoneAndRefusesBadInput(t *testing.T) {
	ctx := migrated(t)
	getenv := stack.Getenv
	var out, errb bytes.Buffer
	clients := devstacktest.Connect(t, stack)
	pool := clients.Pool
	g, _, err := store.NewGames(pool).Create(ctx, "tz", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"games", "set-timezone", "--game", g.ID, "--timezone", "Asia/Kolkata"}, getenv, &out, &errb); err != nil {
		t.Fatalf("set-timezone: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "is now Asia/Kolkata") {
		t.Errorf("output = %q", out.String())
	}
	got, err := store.NewGames(pool).Get(ctx, g.ID)
	if err != nil || got.Timezone != "Asia/Kolkata" {
		t.Errorf("timezone = %q, %v; want Asia/Kolkata", got.Timezone, err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"the game is required", []string{"--timezone", "UTC"}, "--game and --timezone are required"},
		{"the zone is required", []string{"--game", g.ID}, "--game and --timezone are required"},
		{"the zone must be IANA", []string{"--game", g.ID, "--timezone", "Mars/Olympus"}, "not a known IANA zone"},
		{"the game must exist", []string{"--game", "gnope", "--timezone", "UTC"}, `no game "gnope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(ctx, append([]string{"games", "set-timezone"}, tc.args...), getenv, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
