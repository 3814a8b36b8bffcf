//! Reply codes: each phone numbers the active alerts it was texted about 1, 2,
//! 3, … so a contact answers "1" rather than an alert id. A code is reused once
//! its alert is no longer active.

/// The code `alert` has for a phone holding `in_use` (code, alert) for its
/// active alerts: the one it already has, or the smallest free one. The flag
/// says whether the code is new (to be stored).
pub fn allocate(in_use: &[(u32, i64)], alert: i64) -> (u32, bool) {
    if let Some((code, _)) = in_use.iter().find(|(_, a)| *a == alert) {
        return (*code, false);
    }
    let code = (1..)
        .find(|code| !in_use.iter().any(|(used, _)| used == code))
        .expect("a free code below u32::MAX");
    (code, true)
}

#[cfg(test)]
mod tests {
    use super::allocate;

    #[test]
    fn codes_are_the_smallest_free_and_stable_per_alert() {
        assert_eq!(allocate(&[], 7), (1, true));
        assert_eq!(allocate(&[(1, 7)], 7), (1, false));
        assert_eq!(allocate(&[(1, 7)], 8), (2, true));
        assert_eq!(allocate(&[(2, 8)], 9), (1, true), "1 is free again");
        assert_eq!(allocate(&[(1, 7), (3, 9)], 10), (2, true));
    }
}
