package retain

// DeletePlayerEvents is erasure's delete of one player's events, for the
// plan test in package retain_test.
const DeletePlayerEvents = deletePlayerEvents
