//! Households and meters as the registry reads them: the meter list, one
//! meter's details, unregistered meters, carrier platforms' device ids.

use std::collections::HashMap;

use super::*;

impl RegistryStore for Store {
    fn meter_for_device(
        &self,
        platform_device_id: &str,
        imei: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let db = self.db()?;
        let db: &dyn Db = &db;
        let by = |column: &str, value: &str| -> Result<Option<String>, StoreError> {
            db.query_opt(
                &format!(
                    "SELECT meter_id FROM meters WHERE {column} = ?1 AND status = 'active' LIMIT 1"
                ),
                args![value],
                |row| row.get(0),
            )
        };
        if !platform_device_id.is_empty() {
            if let Some(meter) = by("platform_device_id", platform_device_id)? {
                return Ok(Some(meter));
            }
        }
        match imei {
            Some(imei) => by("imei", imei),
            None => Ok(None),
        }
    }

    fn note_platform_device(
        &self,
        meter: &str,
        device: &PlatformDevice,
        now: i64,
    ) -> Result<(), StoreError> {
        let (online, presence_at) = match device.presence {
            Some((online, at)) => (Some(online), Some(at)),
            None => (None, None),
        };
        self.transact(|db| {
            db.execute(
                "INSERT INTO platform_devices (meter_id, platform, product_id, device_id, imei, online, presence_at, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (meter_id) DO UPDATE SET platform = excluded.platform,
                   product_id = excluded.product_id, device_id = excluded.device_id,
                   imei = coalesce(excluded.imei, platform_devices.imei),
                   online = coalesce(excluded.online, platform_devices.online),
                   presence_at = coalesce(excluded.presence_at, platform_devices.presence_at)",
                args![
                    meter,
                    device.platform,
                    device.product_id,
                    device.device_id,
                    device.imei,
                    online,
                    presence_at,
                    now
                ],
            )
        })?;
        Ok(())
    }

    fn platform_device(&self, meter: &str) -> Result<Option<PlatformDevice>, StoreError> {
        let db = self.db()?;
        Ok((&db as &dyn Db)
            .query_opt(
                "SELECT platform, product_id, device_id, imei, online, presence_at
                 FROM platform_devices WHERE meter_id = ?1",
                args![meter],
                |row| platform_device_from(row, 0),
            )?
            .flatten())
    }

    fn household(&self, meter: &str) -> Result<Option<engine::HouseholdInfo>, StoreError> {
        engine::household_of(&self.db()?, meter)
    }

    fn registered_residents(&self) -> Result<HashMap<String, String>, StoreError> {
        let db = self.db()?;
        let pairs = (&db as &dyn Db).query_all(
            "SELECT m.meter_id, h.resident_name FROM meters m JOIN households h ON h.id = m.household_id
             WHERE m.status = 'active'",
            args![],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(pairs.into_iter().collect())
    }

    fn list_meters(&self) -> Result<Vec<MeterSummary>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT m.meter_id, h.resident_name, h.address, h.category, m.status, s.last_reading_ts,
                    s.last_message, s.last_battery_pct, coalesce(s.last_status, 0),
                    coalesce(s.missing, 0), coalesce(s.rejected, 0), m.registered_at,
                    h.reporting_interval_min
             FROM meters m JOIN households h ON h.id = m.household_id
             LEFT JOIN meter_state s ON s.meter_id = m.meter_id
             ORDER BY m.status = 'active' DESC, m.meter_id",
            args![],
            |row| {
                Ok(MeterSummary {
                    meter_id: row.get(0)?,
                    resident_name: row.get(1)?,
                    address: row.get(2)?,
                    category: row.get(3)?,
                    status: row.get(4)?,
                    last_reading_ts: row.get(5)?,
                    last_message: row.get(6)?,
                    last_battery_pct: row.get(7)?,
                    last_status: row.get(8)?,
                    missing: row.get(9)?,
                    rejected: row.get(10)?,
                    registered_at: row.get(11)?,
                    reporting_interval_min: row.get(12)?,
                })
            },
        )
    }

    fn meter_details(
        &self,
        meter: &str,
        recent: usize,
    ) -> Result<Option<MeterDetails>, StoreError> {
        // One snapshot for the registration, the chunks and the log not yet
        // folded into them.
        self.snapshot(|db| {
            let registration = db.query_opt(
                "SELECT m.household_id, m.status, m.registered_at, m.replaced_by, h.resident_name, h.address,
                        h.category, h.timezone, h.reporting_interval_min, h.notes, h.check_in_phone
                 FROM meters m JOIN households h ON h.id = m.household_id WHERE m.meter_id = ?1",
                args![meter],
                |row| {
                    Ok(Registration {
                        household_id: row.get(0)?,
                        status: row.get(1)?,
                        registered_at: row.get(2)?,
                        replaced_by: row.get(3)?,
                        resident_name: row.get(4)?,
                        address: row.get(5)?,
                        category: row.get(6)?,
                        timezone: row.get(7)?,
                        reporting_interval_min: row.get(8)?,
                        notes: row.get(9)?,
                        check_in_phone: row.get(10)?,
                        contacts: Vec::new(),
                    })
                },
            )?;
            let registration = match registration {
                Some(mut registration) => {
                    registration.contacts = db.query_all(
                        "SELECT step, name, phone FROM contacts WHERE household_id = ?1 ORDER BY position",
                        args![registration.household_id],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )?;
                    Some(registration)
                }
                None => None,
            };
            let state = read_state(db, meter)?;
            if registration.is_none() && state.is_none() {
                return Ok(None);
            }
            let mut recent_readings = Vec::new();
            if recent > 0 {
                let rows = db.query(
                    "SELECT c.day, c.data FROM reading_chunks c JOIN meter_state s ON s.meter_key = c.meter_key
                     WHERE s.meter_id = ?1 ORDER BY c.day DESC",
                    args![meter],
                )?;
                for row in &rows {
                    let mut day = chunk::decode(row.get(0)?, &row.get::<Vec<u8>>(1)?)?;
                    day.reverse();
                    recent_readings.extend(day.into_iter().take(recent - recent_readings.len()));
                    if recent_readings.len() >= recent {
                        break;
                    }
                }
                recent_readings.reverse();
                for reading in unfolded_readings(db, meter)? {
                    chunk::insert(&mut recent_readings, reading);
                }
                let surplus = recent_readings.len().saturating_sub(recent);
                recent_readings.drain(..surplus);
            }
            Ok(Some(MeterDetails {
                meter_id: meter.to_string(),
                registration,
                state,
                recent: recent_readings,
            }))
        })
    }

    fn active_meters(&self, category: Option<&str>) -> Result<Vec<String>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT m.meter_id FROM meters m JOIN households h ON h.id = m.household_id
             WHERE m.status = 'active' AND (CAST(?1 AS TEXT) IS NULL OR h.category = ?1)
             ORDER BY m.meter_id",
            args![category],
            |row| row.get(0),
        )
    }

    fn categories_in_use(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT DISTINCT h.category FROM households h JOIN meters m ON m.household_id = h.id
             WHERE m.status = 'active' ORDER BY h.category",
            args![],
            |row| row.get(0),
        )
    }
}
