-- A third kind of key: admin keys manage a game's alert rules, notification
-- destinations, player rules and item catalogue. Read keys (analysts,
-- dashboards) and write keys (built into game clients) cannot, so a leaked
-- client key cannot redirect a studio's notifications.
ALTER TABLE game_keys DROP CONSTRAINT game_keys_kind_check;
ALTER TABLE game_keys ADD CONSTRAINT game_keys_kind_check CHECK (kind IN ('write', 'read', 'admin'));
