//! Who may connect, and what a meter's own login may publish.

use rumqttc::mqttbytes::v4::Login;

use super::Settings;
use crate::domain::{login_matches, MeterId};
use crate::pipeline::{Decoded, RejectReason, Rejection};
use crate::wire::Topics;

/// Checks a login: `Ok(Some(meter))` for a meter's own login (with
/// `meter_logins` on), `Ok(None)` for the shared one or when none is
/// asked for, `Err` to refuse.
pub(super) async fn check(
    settings: &Settings,
    login: Option<&Login>,
) -> Result<Option<String>, ()> {
    let shared_ok = match (&settings.credentials, login) {
        (Some((user, password)), Some(login)) => {
            login.username == *user && login.password.as_bytes() == password.expose().as_bytes()
        }
        (Some(_), None) => false,
        // No shared login configured: open, unless meters must log in.
        (None, _) => !settings.meter_logins,
    };
    if shared_ok {
        return Ok(None);
    }
    let (true, Some(login)) = (settings.meter_logins, login) else {
        return Err(());
    };
    let book = settings.sessions.clone();
    let meter = login.username.clone();
    let stored = tokio::task::spawn_blocking(move || book.meter_login(&meter))
        .await
        .map_err(|_| ())?;
    match stored {
        Ok(Some(hash)) if login_matches(&hash, &login.username, &login.password) => {
            Ok(Some(login.username.clone()))
        }
        Ok(_) => Err(()),
        Err(error) => {
            tracing::error!(%error, "cannot read a meter's login");
            Err(())
        }
    }
}

/// A publish refused because its client logged in as `meter` and the topic
/// is not that meter's.
pub(super) fn not_permitted(topics: &Topics, meter: &str) -> Decoded {
    let rejection = Rejection::new(
        RejectReason::NotPermitted,
        format!(
            "a client logged in as meter {meter} may publish only to {}/{meter}/reading",
            topics.native_prefix
        ),
    );
    Decoded::rejected(MeterId::parse(meter).ok(), rejection)
}
