//! The meter registry's rules: what a household record must hold, and the
//! installation CSV (PRODUCT.md section 5) parsed into validated records.
//!
//! This module validates; `actions::meters` registers and `store` persists. An
//! import is all-or-nothing: either every row is valid, or the caller gets every
//! problem of every row with its row number, column and reason.

use std::collections::HashMap;
use std::fmt;

use chrono_tz::Tz;

use crate::config::RegistryDefaults;
use crate::domain::{MeterId, PhoneNumber};

/// The installation CSV's columns, in order.
pub const CSV_COLUMNS: [&str; 16] = [
    "meter_id",
    "resident_name",
    "address",
    "category",
    "timezone",
    "reporting_interval_min",
    "contact1_name",
    "contact1_phone",
    "contact2_name",
    "contact2_phone",
    "contact3_name",
    "contact3_phone",
    "notes",
    "check_in_phone",
    "imei",
    "platform_device_id",
];

/// The category used when the CSV leaves it empty.
pub const DEFAULT_CATEGORY: &str = "general";

pub use crate::domain::{Contact, NewHousehold};

/// One problem with one field of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub column: String,
    pub reason: String,
}

impl RowError {
    /// A problem with the file as a whole ("the file: is empty").
    pub fn file(reason: impl Into<String>) -> Self {
        Self {
            row: 0,
            column: "the file".into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.row == 0 {
            write!(f, "{}: {}", self.column, self.reason)
        } else {
            write!(
                f,
                "row {}, column {}: {}",
                self.row, self.column, self.reason
            )
        }
    }
}

/// The fields of one household as text, before validation.
#[derive(Debug, Clone, Default)]
pub struct HouseholdFields {
    pub meter_id: String,
    pub resident_name: String,
    pub address: String,
    pub category: String,
    pub timezone: String,
    pub reporting_interval_min: String,
    /// (name, phone) pairs in escalation order.
    pub contacts: Vec<(String, String)>,
    pub notes: String,
    /// The resident's own phone for check-ins (optional).
    pub check_in_phone: String,
    /// An NB-IoT meter's module IMEI (optional).
    pub imei: String,
    /// The device id a carrier platform gives the meter (optional).
    pub platform_device_id: String,
}

impl HouseholdFields {
    /// Validates every field, collecting every problem rather than the first.
    pub fn validate(
        &self,
        row: usize,
        defaults: &RegistryDefaults,
    ) -> Result<NewHousehold, Vec<RowError>> {
        let mut errors = Vec::new();
        let mut fail = |column: &str, reason: String| {
            errors.push(RowError {
                row,
                column: column.to_string(),
                reason,
            })
        };
        let meter = MeterId::parse(self.meter_id.trim())
            .map_err(|error| fail("meter_id", error.to_string()))
            .ok();
        let resident_name = self.resident_name.trim().to_string();
        if resident_name.is_empty() {
            fail("resident_name", "is empty".into());
        } else if resident_name.chars().count() > 64 {
            fail("resident_name", "is longer than 64 characters".into());
        }
        let address = self.address.trim().to_string();
        if address.is_empty() {
            fail(
                "address",
                "is empty: the monitoring team needs to know where to go".into(),
            );
        } else if address.chars().count() > 200 {
            fail("address", "is longer than 200 characters".into());
        }
        let category = match self.category.trim() {
            "" => DEFAULT_CATEGORY.to_string(),
            category
                if category.len() <= 32
                    && category.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    }) =>
            {
                category.to_string()
            }
            category => {
                fail(
                    "category",
                    format!("{category:?} must be 1-32 characters of a-z, 0-9, '_' and '-' (e.g. elderly_alone)"),
                );
                String::new()
            }
        };
        let timezone = match self.timezone.trim() {
            "" => defaults.timezone,
            name => name.parse::<Tz>().unwrap_or_else(|_| {
                fail(
                    "timezone",
                    format!("{name:?} is not an IANA time zone such as Asia/Shanghai"),
                );
                defaults.timezone
            }),
        };
        let reporting_interval_min = match self.reporting_interval_min.trim() {
            "" => defaults.reporting_interval_min,
            text => match text.parse::<u32>() {
                Ok(minutes) if (1..=1440).contains(&minutes) => minutes,
                _ => {
                    fail(
                        "reporting_interval_min",
                        format!("{text:?} must be a whole number of minutes from 1 to 1440"),
                    );
                    0
                }
            },
        };
        let mut contacts = Vec::new();
        for (index, (name, phone)) in self.contacts.iter().enumerate() {
            let position = index + 1;
            let (name, phone) = (name.trim(), phone.trim());
            match (name.is_empty(), phone.is_empty()) {
                (true, true) => continue,
                (false, true) => fail(
                    &format!("contact{position}_phone"),
                    format!("is empty but contact{position}_name is given"),
                ),
                (true, false) => fail(
                    &format!("contact{position}_name"),
                    format!("is empty but contact{position}_phone is given"),
                ),
                (false, false) => match PhoneNumber::parse(phone) {
                    Ok(phone) => contacts.push(Contact {
                        name: name.to_string(),
                        phone,
                        step: contacts.len() as u32 + 1,
                    }),
                    Err(error) => fail(&format!("contact{position}_phone"), error.to_string()),
                },
            }
        }
        if contacts.is_empty()
            && !self
                .contacts
                .iter()
                .any(|(n, p)| !n.trim().is_empty() || !p.trim().is_empty())
        {
            fail(
                "contact1_name",
                "a household needs at least one contact to alert".into(),
            );
        }
        let check_in_phone = match self.check_in_phone.trim() {
            "" => None,
            phone => PhoneNumber::parse(phone)
                .map_err(|error| fail("check_in_phone", error.to_string()))
                .ok(),
        };
        let imei = match self.imei.trim() {
            "" => None,
            imei if crate::domain::is_imei(imei) => Some(imei.to_string()),
            imei => {
                fail(
                    "imei",
                    format!("{imei:?} is not an IMEI: 15 digits, as printed on the meter's module"),
                );
                None
            }
        };
        let platform_device_id = match self.platform_device_id.trim() {
            "" => None,
            id if id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(id.to_string())
            }
            id => {
                fail(
                    "platform_device_id",
                    format!("{id:?} is not a platform device id: at most 64 characters, no spaces"),
                );
                None
            }
        };
        match meter {
            Some(meter) if errors.is_empty() => Ok(NewHousehold {
                row,
                meter,
                resident_name,
                address,
                category,
                timezone,
                reporting_interval_min,
                contacts,
                notes: self.notes.trim().to_string(),
                check_in_phone,
                imei,
                platform_device_id,
            }),
            _ => Err(errors),
        }
    }
}

/// Parses an installation CSV (UTF-8, header row). Returns every household, or
/// every problem found in the file.
pub fn parse_csv(
    text: &str,
    defaults: &RegistryDefaults,
) -> Result<Vec<NewHousehold>, Vec<RowError>> {
    import_csv(text.as_bytes(), defaults, |_| None)
}

/// Reads an installation CSV as it came from disk, and reports every problem of
/// every row at once: a file that is empty or not UTF-8 (naming the line),
/// rows with too many or too few fields, bad values, meters repeated in the
/// file, and meters `registered` says are already registered (it returns the
/// resident's name for those).
pub fn import_csv(
    bytes: &[u8],
    defaults: &RegistryDefaults,
    registered: impl Fn(&MeterId) -> Option<String>,
) -> Result<Vec<NewHousehold>, Vec<RowError>> {
    let file_error = |reason: String| vec![RowError::file(reason)];
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let line = bytes[..error.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(file_error(format!(
                "line {line} is not UTF-8 text: save the spreadsheet as \"CSV UTF-8\""
            )));
        }
    };
    if text.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(file_error("is empty".into()));
    }
    let (households, mut errors) = read_rows(text, defaults)?;
    for household in &households {
        if let Some(resident) = registered(&household.meter) {
            errors.push(RowError {
                row: household.row,
                column: "meter_id".into(),
                reason: format!(
                    "{} is already registered (household of {})",
                    household.meter, resident
                ),
            });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.row);
        return Err(errors);
    }
    if households.is_empty() {
        return Err(file_error("has a header but no rows".into()));
    }
    Ok(households)
}

/// The households of every good row, and the problems of the others (or of
/// the header, which stops the reading).
fn read_rows(
    text: &str,
    defaults: &RegistryDefaults,
) -> Result<(Vec<NewHousehold>, Vec<RowError>), Vec<RowError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text); // spreadsheets often write a BOM
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header_error = |column: &str, reason: String| {
        vec![RowError {
            row: 1,
            column: column.to_string(),
            reason,
        }]
    };
    let headers = reader
        .headers()
        .map_err(|error| header_error("(header)", format!("cannot be read: {error}")))?
        .clone();
    let mut errors = Vec::new();
    let mut index_of = HashMap::new();
    for (position, name) in headers.iter().enumerate() {
        if !CSV_COLUMNS.contains(&name) {
            errors.push(RowError {
                row: 1,
                column: name.to_string(),
                reason: format!(
                    "is not a known column; the columns are {}",
                    CSV_COLUMNS.join(",")
                ),
            });
        } else if index_of.insert(name, position).is_some() {
            errors.push(RowError {
                row: 1,
                column: name.to_string(),
                reason: "appears twice".into(),
            });
        }
    }
    for required in [
        "meter_id",
        "resident_name",
        "address",
        "contact1_name",
        "contact1_phone",
    ] {
        if !index_of.contains_key(required) {
            errors.push(RowError {
                row: 1,
                column: required.to_string(),
                reason: "is a required column and is missing from the header".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut households = Vec::new();
    let mut first_row_of: HashMap<String, usize> = HashMap::new();
    for (position, record) in reader.records().enumerate() {
        let row = position + 2;
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                errors.push(RowError {
                    row,
                    column: "(row)".into(),
                    reason: format!("cannot be read: {error}"),
                });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue; // blank lines at the end of a spreadsheet export
        }
        if record.len() != headers.len() {
            errors.push(RowError {
                row,
                column: "(row)".into(),
                reason: format!(
                    "has {} fields; the header has {}",
                    record.len(),
                    headers.len()
                ),
            });
            continue;
        }
        let field = |name: &str| {
            index_of
                .get(name)
                .and_then(|&index| record.get(index))
                .unwrap_or("")
                .to_string()
        };
        let fields = HouseholdFields {
            meter_id: field("meter_id"),
            resident_name: field("resident_name"),
            address: field("address"),
            category: field("category"),
            timezone: field("timezone"),
            reporting_interval_min: field("reporting_interval_min"),
            contacts: (1..=3)
                .map(|n| {
                    (
                        field(&format!("contact{n}_name")),
                        field(&format!("contact{n}_phone")),
                    )
                })
                .collect(),
            notes: field("notes"),
            check_in_phone: field("check_in_phone"),
            imei: field("imei"),
            platform_device_id: field("platform_device_id"),
        };
        match fields.validate(row, defaults) {
            Ok(household) => {
                if let Some(first) = first_row_of.insert(household.meter.to_string(), row) {
                    errors.push(RowError {
                        row,
                        column: "meter_id".into(),
                        reason: format!("{} is already on row {first}", household.meter),
                    });
                } else {
                    households.push(household);
                }
            }
            Err(row_errors) => errors.extend(row_errors),
        }
    }
    Ok((households, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../tests/fixtures/csv/good.csv");
    const BAD: &str = include_str!("../tests/fixtures/csv/bad.csv");

    #[test]
    fn a_good_file_gives_normalised_households() {
        let households = parse_csv(GOOD, &RegistryDefaults::default()).unwrap();
        assert_eq!(households.len(), 3);
        let first = &households[0];
        assert_eq!(first.row, 2);
        assert_eq!(first.meter.as_str(), "ZS-0001");
        assert_eq!(first.contacts.len(), 2);
        assert_eq!(first.contacts[0].phone.as_str(), "+8613800138000");
        assert_eq!(first.contacts[1].step, 2);
        let defaulted = &households[2];
        assert_eq!(defaulted.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(defaulted.reporting_interval_min, 60);
        assert_eq!(defaulted.category, DEFAULT_CATEGORY);
    }

    #[test]
    fn a_check_in_phone_may_come_with_the_row() {
        let csv = "meter_id,resident_name,address,contact1_name,contact1_phone,check_in_phone
ZS-0001,张桂芳,民生路12号,李敏,13800138000,13700137000
ZS-0002,陈国华,民生路14号,李敏,13800138000,
ZS-0003,黄秀英,民生路16号,李敏,13800138000,12345
";
        let errors = parse_csv(csv, &RegistryDefaults::default()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(
            (errors[0].row, errors[0].column.as_str()),
            (4, "check_in_phone")
        );
        let good: String = csv.lines().take(3).map(|l| format!("{l}\n")).collect();
        let households = parse_csv(&good, &RegistryDefaults::default()).unwrap();
        assert_eq!(
            households[0].check_in_phone.as_ref().map(|p| p.as_str()),
            Some("+8613700137000")
        );
        assert_eq!(households[1].check_in_phone, None);
    }

    #[test]
    fn a_bad_file_reports_every_bad_row_with_column_and_reason() {
        let errors = parse_csv(BAD, &RegistryDefaults::default()).unwrap_err();
        let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.row, e.column.as_str())).collect();
        assert_eq!(
            found,
            [
                (3, "meter_id"),
                (4, "contact1_phone"),
                (5, "resident_name"),
                (5, "reporting_interval_min"),
                (6, "timezone"),
                (7, "contact1_name"),
                (8, "meter_id"),
                (9, "contact2_phone"),
            ],
            "{errors:#?}"
        );
        assert!(errors[1].reason.contains("E.164"), "{}", errors[1]);
        assert_eq!(
            errors[6].to_string(),
            "row 8, column meter_id: ZS-0101 is already on row 2"
        );
    }

    #[test]
    fn header_problems_are_reported_before_any_row() {
        let errors = parse_csv("meter_id,name\nA,B\n", &RegistryDefaults::default()).unwrap_err();
        let columns: Vec<&str> = errors.iter().map(|e| e.column.as_str()).collect();
        assert_eq!(
            columns,
            [
                "name",
                "resident_name",
                "address",
                "contact1_name",
                "contact1_phone"
            ]
        );
        assert!(errors.iter().all(|e| e.row == 1));
    }

    #[test]
    fn every_problem_of_every_row_is_reported_at_once_even_already_registered_meters() {
        let mut text = GOOD.to_string();
        text.push_str("ZS-9999,王五,地址,,,,联系人,12345,,,,,\n");
        let registered =
            |meter: &MeterId| (meter.as_str() == "ZS-0002").then(|| "李四".to_string());
        let errors =
            import_csv(text.as_bytes(), &RegistryDefaults::default(), registered).unwrap_err();
        let rows: Vec<(usize, &str)> = errors.iter().map(|e| (e.row, e.column.as_str())).collect();
        assert!(rows.contains(&(3, "meter_id")), "{errors:#?}");
        assert!(rows.contains(&(5, "contact1_phone")), "{errors:#?}");
        let duplicate = errors.iter().find(|e| e.row == 3).unwrap().to_string();
        assert!(
            duplicate.contains("already registered") && duplicate.contains("李四"),
            "{duplicate}"
        );
    }

    #[test]
    fn a_short_row_says_how_many_fields_it_has() {
        let header = GOOD.lines().next().unwrap();
        let columns = header.split(',').count();
        let short_row = vec!["x"; columns - 1].join(",");
        let text = format!("{header}\n{short_row}\n");
        let errors = parse_csv(&text, &RegistryDefaults::default()).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            format!(
                "row 2, column (row): has {} fields; the header has {columns}",
                columns - 1
            )
        );
    }

    #[test]
    fn an_empty_or_non_utf8_file_says_so() {
        for empty in ["", "\u{feff}", " \n\n"] {
            let errors = parse_csv(empty, &RegistryDefaults::default()).unwrap_err();
            assert_eq!(errors[0].to_string(), "the file: is empty");
        }
        let mut bytes = GOOD.as_bytes().to_vec();
        let third_line = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0
            + 1;
        bytes.insert(third_line, 0xd5); // GBK, as a spreadsheet saves by default in China
        let errors = import_csv(&bytes, &RegistryDefaults::default(), |_| None).unwrap_err();
        assert!(
            errors[0].to_string().contains("line 3 is not UTF-8"),
            "{}",
            errors[0]
        );
    }
}
