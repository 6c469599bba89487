-- Retention in constant time: how many players of each install cohort were
-- active on each later day (both days in the game's time zone). It is
-- player_days joined with players.install_day and counted, kept up to date by
-- process in the transaction that changes either side:
--   * a new player_days row adds one to (install_day, day);
--   * a player whose install day moves earlier (an older event arrived late)
--     moves each of their existing days from the old cohort to the new one;
--   * retain's erasure takes one off each of the erased player's days;
--   * a time zone change rebuilds the game's rows with everything else.
-- Row (c, c) is the size of cohort c: every player is active on their
-- install day. A game has at most one row per pair of days, so a retention
-- matrix reads a few hundred rows whatever the number of players.
CREATE TABLE cohort_days (
    gameid      text   NOT NULL,
    install_day date   NOT NULL,
    day         date   NOT NULL,
    players     bigint NOT NULL,
    PRIMARY KEY (gameid, install_day, day)
);

INSERT INTO cohort_days (gameid, install_day, day, players)
SELECT p.gameid, p.install_day, d.day, count(*)
FROM player_days d JOIN players p USING (gameid, subject)
GROUP BY 1, 2, 3;
