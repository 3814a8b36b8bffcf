//! The `log` provider: prints each text to standard output (development, the demo).
//! Delivery is recorded in the outbox like any provider's.

use super::{SendFuture, Sent, Sms, SmsProvider};
use crate::domain::mask_phone;

pub struct LogProvider;

impl SmsProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a> {
        Box::pin(async move {
            println!(
                "SMS → {} (alert {}): {}",
                mask_phone(&sms.to),
                sms.alert_id,
                sms.text
            );
            Ok(Sent::default())
        })
    }
}
