-- One player's activity rows. player_days and player_hours are keyed by
-- (gameid, period, subject) so reports count a day's players cheaply, but
-- two writes look a player up across all periods: process moving a
-- player's days to an earlier install cohort (a late event, common with
-- games played offline) and retain erasing a player. Without these indexes
-- each of those scans every activity row of the game.
CREATE INDEX player_days_player ON player_days (gameid, subject);
CREATE INDEX player_hours_player ON player_hours (gameid, subject);
