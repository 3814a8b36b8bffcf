//! What the embedded MQTT server keeps about its clients.
//!
//! Persistent sessions (clean session off): the server keeps nothing else for
//! them — it delivers nothing — but it must remember that the session exists,
//! across restarts: a client told on reconnection that no session is present
//! discards the messages it had not had acknowledged (MQTT 3.1.1, 3.2.2.2).
//! Meters' own logins: the hash of each meter's password (set through
//! `actions::meters::new_login`).

use super::db::{args, Db};
use super::{Store, StoreError};

impl Store {
    /// Every client id with a persistent session.
    pub fn mqtt_sessions(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all("SELECT client_id FROM mqtt_sessions", args![], |row| {
            row.get(0)
        })
    }

    /// Records `client_id`'s persistent session, begun at `since` (wall clock).
    pub fn remember_mqtt_session(&self, client_id: &str, since: i64) -> Result<(), StoreError> {
        self.db()?.execute(
            "INSERT INTO mqtt_sessions (client_id, since) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![client_id, since],
        )?;
        Ok(())
    }

    /// Ends `client_id`'s persistent session (it connected with a clean session).
    pub fn forget_mqtt_session(&self, client_id: &str) -> Result<(), StoreError> {
        self.db()?.execute(
            "DELETE FROM mqtt_sessions WHERE client_id = ?1",
            args![client_id],
        )?;
        Ok(())
    }

    /// The hash of `meter`'s own MQTT login, if it has one.
    pub fn meter_login(&self, meter: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_opt(
            "SELECT hash FROM meter_logins WHERE meter_id = ?1",
            args![meter],
            |row| row.get(0),
        )
    }
}
