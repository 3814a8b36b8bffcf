//! Versioned migrations, applied in order when the store opens.
//!
//! `PRAGMA user_version` holds the number of migrations applied. A migration is
//! never edited once released: a change is a new migration at the end.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: readings, per-meter state, rejected messages, the registry, the audit log.
    "
    CREATE TABLE meter_state (
        meter_key           INTEGER PRIMARY KEY,
        meter_id            TEXT NOT NULL UNIQUE,
        first_seen          INTEGER NOT NULL,   -- wall clock, Unix s
        last_message        INTEGER NOT NULL,   -- wall clock, Unix s: any message naming the meter
        last_reading_ts     INTEGER,            -- meter clock: newest valid reading
        last_received       INTEGER,            -- wall clock: when a reading last moved last_reading_ts
        last_consumption_ts INTEGER,            -- meter clock: newest reading whose register rose
        last_total_l        INTEGER,
        last_flow_lph       INTEGER,
        last_battery_pct    INTEGER,
        last_status         INTEGER NOT NULL DEFAULT 0,
        readings            INTEGER NOT NULL DEFAULT 0,
        register_resets     INTEGER NOT NULL DEFAULT 0,
        rejected            INTEGER NOT NULL DEFAULT 0
    );
    -- One row per meter and UTC day; `data` is the chunk encoding (store/chunk.rs).
    CREATE TABLE reading_chunks (
        meter_key INTEGER NOT NULL,
        day       INTEGER NOT NULL,
        data      BLOB NOT NULL,
        PRIMARY KEY (meter_key, day)
    ) WITHOUT ROWID;
    CREATE TABLE meter_events (
        meter_key INTEGER NOT NULL,
        ts        INTEGER NOT NULL,
        kind      TEXT NOT NULL,
        detail    TEXT NOT NULL
    );
    CREATE INDEX meter_events_meter ON meter_events (meter_key, ts);
    CREATE TABLE rejected_messages (
        id          INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        topic       TEXT NOT NULL,
        meter_id    TEXT,
        reason      TEXT NOT NULL,
        detail      TEXT NOT NULL,
        payload     BLOB NOT NULL           -- the first 512 bytes
    );
    CREATE TABLE households (
        id                     INTEGER PRIMARY KEY,
        resident_name          TEXT NOT NULL,
        address                TEXT NOT NULL,
        category               TEXT NOT NULL,
        timezone               TEXT NOT NULL,
        reporting_interval_min INTEGER NOT NULL,
        notes                  TEXT NOT NULL,
        created_at             INTEGER NOT NULL
    );
    CREATE TABLE contacts (
        household_id INTEGER NOT NULL REFERENCES households (id),
        position     INTEGER NOT NULL,
        name         TEXT NOT NULL,
        phone        TEXT NOT NULL,         -- E.164
        step         INTEGER NOT NULL,
        PRIMARY KEY (household_id, position)
    ) WITHOUT ROWID;
    CREATE INDEX contacts_phone ON contacts (phone);
    CREATE TABLE meters (
        meter_id      TEXT PRIMARY KEY,
        household_id  INTEGER NOT NULL REFERENCES households (id),
        status        TEXT NOT NULL CHECK (status IN ('active', 'replaced', 'removed')),
        registered_at INTEGER NOT NULL,
        ended_at      INTEGER,
        replaced_by   TEXT
    );
    CREATE INDEX meters_household ON meters (household_id);
    CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail  TEXT NOT NULL
    );
    ",
    // 2: alerts, their history, the notification outbox, reply codes, absences,
    //    and how far detection has evaluated each meter.
    "
    ALTER TABLE meter_state ADD COLUMN evaluated_through INTEGER; -- meter clock
    -- Readings stored before detection existed are history, not news: nobody is
    -- texted about them when the upgraded gateway starts.
    UPDATE meter_state SET evaluated_through = last_reading_ts;
    ALTER TABLE households ADD COLUMN check_in_phone TEXT;         -- E.164, the resident's own
    CREATE TABLE alerts (
        id                 INTEGER PRIMARY KEY,
        meter_id           TEXT NOT NULL,
        household_id       INTEGER,
        kind               TEXT NOT NULL,
        severity           TEXT NOT NULL,
        state              TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved', 'closed')),
        since              INTEGER NOT NULL,   -- meter clock: when the condition began
        opened_at          INTEGER NOT NULL,   -- meter clock (wall clock for meter_offline)
        last_detected_at   INTEGER NOT NULL,
        detail             TEXT NOT NULL,
        created_at         INTEGER NOT NULL,   -- wall clock
        notified_step      INTEGER NOT NULL DEFAULT 0,
        last_notified_at   INTEGER,            -- wall clock of the newest step or reminder
        reminders          INTEGER NOT NULL DEFAULT 0,
        check_in_until     INTEGER,            -- wall clock: contacts wait for the resident's reply
        acknowledged_at    INTEGER, acknowledged_by TEXT, acknowledged_via TEXT,
        resolved_at        INTEGER, resolved_by TEXT, resolved_via TEXT,
        closed_at          INTEGER, closed_by TEXT, closed_via TEXT,
        disposition        TEXT, note TEXT
    );
    CREATE UNIQUE INDEX alerts_one_active ON alerts (meter_id, kind) WHERE state IN ('open', 'acknowledged');
    CREATE INDEX alerts_state ON alerts (state, id);
    CREATE TABLE alert_events (
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        at       INTEGER NOT NULL,             -- wall clock
        actor    TEXT NOT NULL,
        channel  TEXT NOT NULL,                -- detector, sms, cli, web, escalation
        action   TEXT NOT NULL,
        detail   TEXT NOT NULL
    );
    CREATE INDEX alert_events_alert ON alert_events (alert_id);
    CREATE TABLE notifications (
        id              INTEGER PRIMARY KEY,
        alert_id        INTEGER NOT NULL REFERENCES alerts (id),
        phone           TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        step            INTEGER NOT NULL,
        purpose         TEXT NOT NULL,         -- alert, reminder, resolved, check_in
        text            TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        due_at          INTEGER NOT NULL,      -- wall clock (ms before migration 3, then s)
        last_error      TEXT,
        sent_at         INTEGER,
        created_at      INTEGER NOT NULL
    );
    CREATE INDEX notifications_due ON notifications (state, due_at);
    CREATE TABLE notification_attempts (
        notification_id INTEGER NOT NULL REFERENCES notifications (id),
        at              INTEGER NOT NULL,      -- wall clock (ms before migration 3, then s)
        outcome         TEXT NOT NULL,         -- sent, retry, failed
        error           TEXT
    );
    CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id);
    CREATE TABLE sms_codes (
        phone    TEXT NOT NULL,
        code     INTEGER NOT NULL,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        PRIMARY KEY (phone, code)
    ) WITHOUT ROWID;
    CREATE TABLE absences (
        id           INTEGER PRIMARY KEY,
        household_id INTEGER NOT NULL REFERENCES households (id),
        reason       TEXT NOT NULL,
        starts_at    INTEGER NOT NULL,
        ends_at      INTEGER NOT NULL,
        declared_by  TEXT NOT NULL,
        declared_at  INTEGER NOT NULL,
        ended_at     INTEGER
    );
    CREATE INDEX absences_household ON absences (household_id, ends_at);
    -- Rule parameters set by operators; they win over the config file.
    CREATE TABLE rule_overrides (
        scope  TEXT NOT NULL CHECK (scope IN ('category', 'household')),
        target TEXT NOT NULL,              -- category name, or household id
        key    TEXT NOT NULL,
        value  TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        PRIMARY KEY (scope, target, key)
    ) WITHOUT ROWID;
    ",
    // 3: maintenance alerts wait out a hold before they resolve; a resident's
    // answered check-in covers the quiet stretch it answered; the outbox counts
    // seconds like everything else and keeps what each text was made from.
    "
    UPDATE notifications SET due_at = due_at / 1000, created_at = created_at / 1000,
                             sent_at = sent_at / 1000;
    UPDATE notification_attempts SET at = at / 1000;
    ALTER TABLE notifications ADD COLUMN template TEXT NOT NULL DEFAULT '';         -- <kind>.<purpose>
    ALTER TABLE notifications ADD COLUMN template_values TEXT NOT NULL DEFAULT '{}'; -- JSON
    ALTER TABLE audit_log ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE audit_log ADD COLUMN channel TEXT NOT NULL DEFAULT 'cli';
    ALTER TABLE alerts ADD COLUMN clear_since INTEGER;  -- meter clock: condition absent since
    CREATE TABLE check_in_covers (
        meter_id    TEXT PRIMARY KEY,
        severity    TEXT NOT NULL,                   -- the grade the resident answered
        answered_at INTEGER NOT NULL                 -- wall clock
    ) WITHOUT ROWID;
    ",
    // 4: a long-running gateway keeps every alert and text; the engine counts
    // a meter's recent texts at every reading that could open an alert. Find
    // them by meter and by alert instead of reading them all (the benchmark's
    // gateway slowed down week by week without these).
    "
    CREATE INDEX alerts_meter ON alerts (meter_id, opened_at);
    CREATE INDEX notifications_alert ON notifications (alert_id);
    ",
    // 5: each meter's learned routine (`detect::Routine`, a few hundred
    // bytes), written with `evaluated_through` so a restart forgets nothing.
    "
    ALTER TABLE meter_state ADD COLUMN routine BLOB;
    ",
    // 6: MQTT clients of the embedded server with a persistent session, so
    // that a restart still answers them that their session is present.
    "
    CREATE TABLE mqtt_sessions (
        client_id TEXT PRIMARY KEY,
        since     INTEGER NOT NULL                   -- wall clock
    ) WITHOUT ROWID;
    ",
    // 7: a meter's own MQTT login (`[mqtt] meter_logins`): with it, a client
    // may publish only that meter's readings.
    "
    CREATE TABLE meter_logins (
        meter_id   TEXT PRIMARY KEY,
        hash       BLOB NOT NULL,                    -- domain::login_hash
        created_at INTEGER NOT NULL                  -- wall clock
    ) WITHOUT ROWID;
    ",
    // 8: readings lost on the way, by the meter's own message counter.
    "
    ALTER TABLE meter_state ADD COLUMN last_seq INTEGER;
    ALTER TABLE meter_state ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;
    ",
    // 9: the earliest reading stored after detection had passed its time, to
    // be judged at its own time (cleared once it is).
    "
    ALTER TABLE meter_state ADD COLUMN late_from INTEGER;
    ",
    // 10: the gateway writer's log: each commit's accepted readings as one
    // row (store::log), folded into reading_chunks and meter_state in bulk.
    "
    CREATE TABLE reading_log (
        id       INTEGER PRIMARY KEY,
        readings INTEGER NOT NULL,                   -- entries in data
        data     BLOB NOT NULL
    );
    ",
    // 11: real SMS providers: which provider took each text (or which one it
    // must go through: a heartbeat's, or one that may have taken it already),
    // the provider's id for it, what its delivery receipt said, and the
    // provider of every attempt.
    "
    ALTER TABLE notifications ADD COLUMN provider TEXT;
    ALTER TABLE notifications ADD COLUMN provider_ref TEXT;
    ALTER TABLE notifications ADD COLUMN delivery TEXT;            -- delivered, undelivered
    ALTER TABLE notifications ADD COLUMN delivered_at INTEGER;     -- wall clock of the receipt
    ALTER TABLE notifications ADD COLUMN segments INTEGER;
    ALTER TABLE notification_attempts ADD COLUMN provider TEXT;
    CREATE INDEX notifications_provider_ref ON notifications (provider, provider_ref)
        WHERE provider_ref IS NOT NULL;
    CREATE INDEX notifications_sent_to ON notifications (phone, sent_at) WHERE state = 'sent';
    -- The self-watch's proof that the database takes writes.
    CREATE TABLE watch (
        name TEXT PRIMARY KEY,
        at   INTEGER NOT NULL                        -- wall clock
    ) WITHOUT ROWID;
    ",
    // 12: NB-IoT meters pushed by a carrier platform are found by their
    // module's IMEI or the platform's device id.
    "
    ALTER TABLE meters ADD COLUMN imei TEXT;
    ALTER TABLE meters ADD COLUMN platform_device_id TEXT;
    CREATE INDEX meters_imei ON meters (imei) WHERE imei IS NOT NULL;
    CREATE INDEX meters_platform_device ON meters (platform_device_id)
        WHERE platform_device_id IS NOT NULL;
    -- Each meter a platform has pushed for: how the platform names it, and
    -- what it last said of the device's presence.
    CREATE TABLE platform_devices (
        meter_id    TEXT PRIMARY KEY,
        platform    TEXT NOT NULL,
        product_id  TEXT NOT NULL,
        device_id   TEXT NOT NULL,
        imei        TEXT,
        online      INTEGER,                         -- 1 online, 0 offline, NULL not said
        presence_at INTEGER,                         -- wall clock of that report
        first_seen  INTEGER NOT NULL                 -- wall clock
    ) WITHOUT ROWID;
    ",
    // 13: API tokens, stored as their SHA-256 only.
    "
    CREATE TABLE api_tokens (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        role       TEXT NOT NULL,
        hash       BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,                 -- wall clock
        revoked_at INTEGER
    );
    ",
    // 14: threshold overrides for every household (scope 'global', target '*').
    "
    CREATE TABLE rule_overrides_14 (
        scope  TEXT NOT NULL CHECK (scope IN ('global', 'category', 'household')),
        target TEXT NOT NULL,              -- '*', a category name, or a household id
        key    TEXT NOT NULL,
        value  TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        PRIMARY KEY (scope, target, key)
    ) WITHOUT ROWID;
    INSERT INTO rule_overrides_14 SELECT scope, target, key, value, set_by, set_at FROM rule_overrides;
    DROP TABLE rule_overrides;
    ALTER TABLE rule_overrides_14 RENAME TO rule_overrides;
    ",
    // 15: work several gateways share: leases (the timer duties), and texts
    // claimed by the gateway sending them.
    "
    CREATE TABLE leases (
        name     TEXT PRIMARY KEY,
        holder   TEXT NOT NULL,
        until_ts INTEGER NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
    ALTER TABLE notifications ADD COLUMN claimed_until INTEGER;
    ",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    migrate_to(connection, path, VERSION)
}

/// Applies the migrations up to `target`.
fn migrate_to(connection: &mut Connection, path: &Path, target: i64) -> Result<(), StoreError> {
    let current: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            known: VERSION,
        });
    }
    for (index, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(current as usize)
    {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrading_marks_stored_readings_as_already_evaluated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut connection = Connection::open(&path).unwrap();
        migrate_to(&mut connection, &path, 1).unwrap();
        connection
            .execute(
                "INSERT INTO meter_state (meter_id, first_seen, last_message, last_reading_ts) VALUES ('A', 1, 1, 1795392000)",
                [],
            )
            .unwrap();
        migrate(&mut connection, &path).unwrap();
        let evaluated: Option<i64> = connection
            .query_row(
                "SELECT evaluated_through FROM meter_state WHERE meter_id = 'A'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(evaluated, Some(1_795_392_000));
    }

    #[test]
    fn upgrading_moves_the_outbox_from_milliseconds_to_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut connection = Connection::open(&path).unwrap();
        migrate_to(&mut connection, &path, 2).unwrap();
        connection
            .execute_batch(
                "INSERT INTO alerts (id, meter_id, kind, severity, state, since, opened_at, last_detected_at, detail, created_at)
                 VALUES (1, 'A', 'no_usage', 'urgent', 'open', 1, 1, 1, '', 1);
                 INSERT INTO notifications (id, alert_id, phone, recipient, step, purpose, text, idempotency_key, state, due_at, created_at)
                 VALUES (1, 1, '+8613800138000', 'x', 1, 'alert', 't', 'k', 'pending', 1795392000500, 1795392000000);
                 INSERT INTO notification_attempts (notification_id, at, outcome) VALUES (1, 1795392001000, 'retry');",
            )
            .unwrap();
        migrate(&mut connection, &path).unwrap();
        let (due, created, template): (i64, i64, String) = connection
            .query_row(
                "SELECT due_at, created_at, template FROM notifications",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (due, created, template.as_str()),
            (1_795_392_000, 1_795_392_000, "")
        );
        let at: i64 = connection
            .query_row("SELECT at FROM notification_attempts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(at, 1_795_392_001);
    }
}
