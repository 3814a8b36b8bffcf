//! Domain values: meter ids, phone numbers, time, volumes, status flags,
//! readings, households, alerts and texts.
//!
//! Every value here is validated when it is made, so the rest of the gateway
//! can pass them around without checking again. This module does no I/O and
//! knows nothing of JSON shapes, SQL or MQTT; every other module may use it, and
//! it uses none of them.

mod alert;
mod household;
mod text;

use std::fmt;
use std::ops::{Add, Sub};

use thiserror::Error;

pub use alert::*;
pub use household::*;
pub use text::*;

/// A meter's id: 1–32 characters of `[A-Za-z0-9_-]` (PRODUCT.md section 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeterId(String);

/// Why a meter id was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MeterIdError {
    #[error("meter id is empty")]
    Empty,
    #[error("meter id {0:?} is longer than 32 characters")]
    TooLong(String),
    #[error("meter id {0:?} may only contain letters, digits, '_' and '-'")]
    BadCharacter(String),
}

impl MeterId {
    pub const MAX_LEN: usize = 32;

    pub fn parse(text: &str) -> Result<Self, MeterIdError> {
        if text.is_empty() {
            return Err(MeterIdError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(MeterIdError::TooLong(text.chars().take(40).collect()));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(MeterIdError::BadCharacter(text.to_string()));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<MeterId> for String {
    fn from(id: MeterId) -> String {
        id.0
    }
}

impl std::borrow::Borrow<str> for MeterId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point in time: whole Unix seconds (UTC). Meter clocks (event time) and the
/// gateway's clock (wall time) are both kept this way; nothing in the gateway
/// counts milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_secs(seconds: i64) -> Self {
        Self(seconds)
    }

    pub const fn secs(self) -> i64 {
        self.0
    }

    /// Whole hours from `earlier` to `self`, never negative.
    pub fn hours_since(self, earlier: Timestamp) -> i64 {
        ((self.0 - earlier.0) / 3600).max(0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp(self.0, 0) {
            Some(time) => write!(f, "{}", time.format("%Y-%m-%dT%H:%M:%SZ")),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Add<i64> for Timestamp {
    type Output = Timestamp;
    fn add(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds))
    }
}

impl Sub<i64> for Timestamp {
    type Output = Timestamp;
    fn sub(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_sub(seconds))
    }
}

/// The seconds between two times.
impl Sub<Timestamp> for Timestamp {
    type Output = i64;
    fn sub(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

/// A volume of water in whole litres (a register, or water used). Every format
/// we accept carries at most litre resolution, and integers never drift the way
/// summed floats do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Litres(i64);

impl Litres {
    pub const fn new(litres: i64) -> Self {
        Self(litres)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Litres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} L", self.0)
    }
}

/// A phone number normalised to E.164 (`+8613800138000`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a phone number was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error(
        "{0:?} is not a phone number: use E.164 (+8613800138000) or an 11-digit mainland mobile number (13800138000)"
    )]
    Malformed(String),
}

impl PhoneNumber {
    /// Accepts E.164 (`+` then 8–15 digits, first digit not 0) or an 11-digit
    /// mainland mobile number (`1[3-9]` then 9 digits), which becomes `+86…`.
    /// Spaces and dashes between digits are ignored.
    ///
    /// ```
    /// use stillwater::domain::PhoneNumber;
    /// assert_eq!(PhoneNumber::parse("138 0013 8000").unwrap().as_str(), "+8613800138000");
    /// assert!(PhoneNumber::parse("12345").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let compact: String = trimmed.chars().filter(|c| *c != ' ' && *c != '-').collect();
        let malformed = || PhoneError::Malformed(trimmed.to_string());
        if let Some(digits) = compact.strip_prefix('+') {
            let ok = (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if !ok {
                return Err(malformed());
            }
            if let Some(national) = digits.strip_prefix("86") {
                // A mainland number after +86 must itself be well formed when it is a mobile.
                if national.starts_with('1') && !is_mainland_mobile(national) {
                    return Err(malformed());
                }
            }
            return Ok(Self(compact));
        }
        if is_mainland_mobile(&compact) {
            return Ok(Self(format!("+86{compact}")));
        }
        Err(malformed())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with its middle hidden, for logs: `+86138****8000`.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

impl fmt::Display for PhoneNumber {
    /// Masked: a phone number is personal data and `Display` ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

fn is_mainland_mobile(digits: &str) -> bool {
    digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9')
}

/// What is stored of a meter's own MQTT password: SHA-256 over the meter id
/// and the password. The passwords are random (128 bits, `actions::meters::
/// new_login`), so a fast hash is enough: there is no dictionary to try.
/// Whether `text` is an IMEI as modules print it: 15 digits.
pub fn is_imei(text: &str) -> bool {
    text.len() == 15 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `count` bytes from the system's random source, as hex; `None` in the
/// unheard-of case that it fails.
pub fn random_hex(count: usize) -> Option<String> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; count];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

/// Whether two secrets are equal, compared as their SHA-256 digests so the
/// time taken says nothing about where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest(a).as_ref() == digest(b).as_ref()
}

pub fn login_hash(meter: &str, password: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in ["stillwater meter login", meter, password] {
        context.update(part.as_bytes());
        context.update(&[0]);
    }
    let mut hash = [0; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// Whether `password` is `meter`'s, against its stored hash, in time that
/// does not depend on where they differ.
pub fn login_matches(stored: &[u8], meter: &str, password: &str) -> bool {
    let given = login_hash(meter, password);
    stored.len() == given.len()
        && stored
            .iter()
            .zip(given.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// A database URL with any password in it replaced by `***`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// Hides the middle of a phone number: keeps the first six and last four characters.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..chars.len().min(6).min(chars.len() - 4)]
        .iter()
        .collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Hides all but the first character of a name: `张**`. The one way names are
/// masked, in logs, printed texts and anywhere else a name must not show.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count().max(1))),
        None => String::new(),
    }
}

/// Hides an address but its first few characters (the district): `中山市石岐区***`.
pub fn mask_address(address: &str) -> String {
    let keep: String = address.chars().take(6).collect();
    if keep.chars().count() == address.chars().count() {
        return format!("{}***", address.chars().take(2).collect::<String>());
    }
    format!("{keep}***")
}

/// Why a duration was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("must be a duration with a unit, such as \"90s\", \"30m\", \"12h\" or \"7d\"")]
    Malformed,
    #[error("must be positive")]
    NotPositive,
    #[error("is too long")]
    TooLong,
}

/// Parses a duration with a unit — "90s", "30m", "12h", "7d" — into seconds.
///
/// ```
/// use stillwater::domain::{parse_duration, DurationError};
/// assert_eq!(parse_duration("12h"), Ok(43_200));
/// assert_eq!(parse_duration("12"), Err(DurationError::Malformed));
/// assert_eq!(parse_duration("0s"), Err(DurationError::NotPositive));
/// ```
pub fn parse_duration(text: &str) -> Result<i64, DurationError> {
    let text = text.trim();
    let split = text.len().checked_sub(1).ok_or(DurationError::Malformed)?;
    if !text.is_char_boundary(split) {
        return Err(DurationError::Malformed);
    }
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(DurationError::Malformed),
    };
    if number.is_empty()
        || !number
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return Err(DurationError::Malformed);
    }
    let number: i64 = number.parse().map_err(|_| DurationError::TooLong)?;
    if number <= 0 {
        return Err(DurationError::NotPositive);
    }
    number.checked_mul(scale).ok_or(DurationError::TooLong)
}

/// Writes seconds the way [`parse_duration`] reads them, in the largest whole unit.
///
/// ```
/// assert_eq!(stillwater::domain::format_duration(43_200), "12h");
/// assert_eq!(stillwater::domain::format_duration(90), "90s");
/// ```
pub fn format_duration(seconds: i64) -> String {
    for (unit, scale) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds != 0 && seconds % scale == 0 {
            return format!("{}{unit}", seconds / scale);
        }
    }
    format!("{seconds}s")
}

/// "1 meter", "2 meters": a count with its noun, pluralised the English way.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// The language of texts and replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Zh,
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Zh, Language::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

/// Status flags a meter can report, in wmbusmeters' vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFlag {
    Leak,
    Burst,
    Dry,
    Reverse,
    Tamper,
    LowBattery,
    NoConsumption,
    /// The meter's valve is closed: no water can be used (CJ/T 188 status).
    ValveClosed,
    /// The meter reports its valve abnormal.
    ValveFault,
}

impl StatusFlag {
    pub const ALL: [StatusFlag; 9] = [
        StatusFlag::Leak,
        StatusFlag::Burst,
        StatusFlag::Dry,
        StatusFlag::Reverse,
        StatusFlag::Tamper,
        StatusFlag::LowBattery,
        StatusFlag::NoConsumption,
        StatusFlag::ValveClosed,
        StatusFlag::ValveFault,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StatusFlag::Leak => "LEAK",
            StatusFlag::Burst => "BURST",
            StatusFlag::Dry => "DRY",
            StatusFlag::Reverse => "REVERSE",
            StatusFlag::Tamper => "TAMPER",
            StatusFlag::LowBattery => "LOW_BATTERY",
            StatusFlag::NoConsumption => "NO_CONSUMPTION",
            StatusFlag::ValveClosed => "VALVE_CLOSED",
            StatusFlag::ValveFault => "VALVE_FAULT",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|flag| flag.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of [`StatusFlag`]s, stored as a bit mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusFlags(u16);

impl StatusFlags {
    pub fn from_bits(bits: u16) -> Self {
        Self(bits & ((1 << StatusFlag::ALL.len()) - 1))
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn insert(&mut self, flag: StatusFlag) {
        self.0 |= flag.bit();
    }

    pub fn contains(self, flag: StatusFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = StatusFlag> {
        StatusFlag::ALL
            .into_iter()
            .filter(move |flag| self.contains(*flag))
    }
}

impl fmt::Display for StatusFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(StatusFlag::name).collect();
        f.write_str(&names.join(" "))
    }
}

/// One valid reading of a meter's register, as decoded from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub meter: MeterId,
    /// The meter's own timestamp (event time).
    pub ts: Timestamp,
    /// The cumulative register.
    pub total: Litres,
    /// Instantaneous flow, litres per hour, when the meter reports it.
    pub flow_lph: Option<i64>,
    pub battery_pct: Option<u8>,
    pub status: StatusFlags,
    /// The meter's own message counter, when it sends one: a jump shows
    /// readings lost on the way.
    pub seq: Option<u64>,
}

/// One reading as stored and as detection reads it: the register and what
/// came with it, plus whether the register went backwards before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredReading {
    /// Meter clock.
    pub ts: Timestamp,
    /// The cumulative register, litres.
    pub total_l: i64,
    pub flow_lph: Option<i64>,
    pub battery_pct: Option<u8>,
    pub status: u16,
    /// The register went backwards before this reading (meter replaced or
    /// reset): the difference to the previous reading is not consumption.
    pub register_reset: bool,
}

impl StoredReading {
    /// A reading with only a time and a register.
    pub fn plain(ts: i64, total_l: i64) -> Self {
        Self {
            ts: Timestamp::from_secs(ts),
            total_l,
            flow_lph: None,
            battery_pct: None,
            status: 0,
            register_reset: false,
        }
    }
}

#[cfg(test)]
mod tests;
