package store

import (
	"crypto/sha256"
	"encoding/hex"
)

// PlayerHash is how erasures (migrations/0003_erasures.sql) name a player:
// hex SHA-256 of "<game>:<player>". retain records it when it erases a
// player; process looks it up so that events of an erased player that were
// still on their way when the erasure began are not stored again.
func PlayerHash(game, player string) string {
	h := sha256.Sum256([]byte(game + ":" + player))
	return hex.EncodeToString(h[:])
}
