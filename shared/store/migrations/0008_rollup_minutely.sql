-- Minute rollups: the additive metrics of rollup_hourly (events, purchases,
-- revenue, errors, sessions and their lengths, new players, first-time
-- payers, ads, progression, resources, design events) per UTC minute, so
-- alert windows of 1, 5 and 15 minutes are read from rollups like every
-- other number. Distinct counts (active_players, paying_players) stay
-- hourly and daily. Kept for MinuteRollupDays (retain deletes older rows):
-- enough for an anomaly baseline of the same slot over four weeks.
CREATE TABLE rollup_minutely (
    gameid text        NOT NULL,
    minute timestamptz NOT NULL,
    metric text        NOT NULL,
    dim    text        NOT NULL DEFAULT '',
    value  numeric     NOT NULL,
    PRIMARY KEY (gameid, minute, metric, dim)
);
