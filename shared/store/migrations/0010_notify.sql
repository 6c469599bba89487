-- notify: where notifications go (destinations), KPI alert rules with their
-- evaluation state, player rules, and the outbox of notifications and their
-- deliveries. "Sent once" rests on two things here:
--   * a notification's key (rule + window + transition, or player rule +
--     player [+ event id]) is unique per game, and the notification and its
--     deliveries are inserted in the transaction that advances the rule's
--     state, with the rule row locked (FOR UPDATE SKIP LOCKED), so a
--     duplicated tick, a redelivered event or a second replica adds nothing;
--   * a delivery is claimed by one dispatcher at a time (FOR UPDATE SKIP
--     LOCKED, then a lease in due_at), and its outcome is written only by
--     the attempt that claimed it (attempts is the fence).

CREATE TABLE notify_destinations (
    id              text        PRIMARY KEY,
    gameid          text        NOT NULL REFERENCES games (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('webhook', 'slack', 'sns')),
    target          text        NOT NULL,   -- webhook or Slack URL, or SNS topic ARN
    secret          text,                   -- webhook signing secret (whsec_...), shown once
    disabled_at     timestamptz,            -- set when the receiver answered 410 Gone
    disabled_reason text,
    send_after      timestamptz NOT NULL DEFAULT '-infinity', -- Slack: the next free 1 s slot
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_destinations_game ON notify_destinations (gameid);

-- KPI alert rules. spec is the rule as created (metric, filters, window,
-- condition, for, keep_firing_for, min_volume, renotify); the other columns
-- are its state, advanced window by window by the evaluator.
CREATE TABLE notify_alerts (
    id              text        PRIMARY KEY,
    gameid          text        NOT NULL REFERENCES games (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    spec            jsonb       NOT NULL,
    destinations    text[]      NOT NULL DEFAULT '{}',
    snoozed_until   timestamptz,
    state           text        NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'pending', 'firing', 'resolved')),
    breaches        int         NOT NULL DEFAULT 0,  -- consecutive breaching windows
    clears          int         NOT NULL DEFAULT 0,  -- consecutive clear windows while firing
    fired_at        timestamptz,                     -- end of the window that fired
    notified_at     timestamptz,                     -- end of the window last notified (firing or re-notify)
    evaluated_until timestamptz NOT NULL,            -- end of the last window evaluated
    next_eval_at    timestamptz NOT NULL,            -- when the next window may be evaluated
    last_value      double precision,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_alerts_game ON notify_alerts (gameid);
CREATE INDEX notify_alerts_due ON notify_alerts (next_eval_at);

-- Player rules: an event type, conditions on its data, once per player or
-- every time.
CREATE TABLE notify_player_rules (
    id           text        PRIMARY KEY,
    gameid       text        NOT NULL REFERENCES games (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    spec         jsonb       NOT NULL,
    destinations text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_player_rules_game ON notify_player_rules (gameid);

-- The outbox. id is the webhook-id and the CloudEvent id, the same on every
-- retry; event is the structured CloudEvent every destination is sent.
CREATE TABLE notify_notifications (
    id         text        PRIMARY KEY,
    seq        bigint      GENERATED ALWAYS AS IDENTITY, -- creation order: a rule's firing goes before its resolved
    gameid     text        NOT NULL REFERENCES games (id) ON DELETE CASCADE,
    key        text        NOT NULL,
    type       text        NOT NULL,
    rule_id    text,
    event      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gameid, key)
);
CREATE INDEX notify_notifications_created ON notify_notifications (gameid, created_at);
CREATE INDEX notify_notifications_age ON notify_notifications (created_at); -- pruning after NOTIFY_KEEP

CREATE TABLE notify_deliveries (
    notification_id text        NOT NULL REFERENCES notify_notifications (id) ON DELETE CASCADE,
    destination_id  text        NOT NULL REFERENCES notify_destinations (id) ON DELETE CASCADE,
    gameid          text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        int         NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL,
    last_status     int,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, destination_id)
);
CREATE INDEX notify_deliveries_due ON notify_deliveries (due_at) WHERE state = 'pending';
CREATE INDEX notify_deliveries_game ON notify_deliveries (gameid, state);

-- Every attempt of every delivery, for operators and the failed list.
CREATE TABLE notify_attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id text        NOT NULL,
    destination_id  text        NOT NULL,
    attempt         int         NOT NULL,  -- 1.. within its schedule (a retry starts a new one)
    at              timestamptz NOT NULL,
    status          int,                   -- HTTP status, if one came back
    error           text,
    duration_ms     int         NOT NULL,
    FOREIGN KEY (notification_id, destination_id) REFERENCES notify_deliveries ON DELETE CASCADE
);
CREATE INDEX notify_attempts_delivery ON notify_attempts (notification_id, destination_id);
