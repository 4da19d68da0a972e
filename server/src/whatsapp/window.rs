//! The 24-hour customer-service window: whether a person wrote to a site in the last
//! 24 hours, so that free-form (non-template) messages may be sent, and until when.
//! Derived from the inbound message times the webhook stores per (site, number lookup);
//! consent status comes from `crate::status` (derived from events).

use jiff::{SignedDuration, Timestamp};

/// Meta, "Service messages": "When a WhatsApp user messages you or calls you, a 24-hour timer
/// called a customer service window starts. If the user messages or calls you again before
/// the timer expires, the timer resets to 24 hours." While it is open, free-form (non-
/// template) messages may be sent.
pub const CUSTOMER_SERVICE_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// The customer-service window as of `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub open: bool,
    pub last_message_at: Option<Timestamp>,
    /// `last_message_at` + 24 h.
    pub open_until: Option<Timestamp>,
}

pub fn window(last_message_at: Option<Timestamp>, now: Timestamp) -> Window {
    let open_until = last_message_at.and_then(|t| t.checked_add(CUSTOMER_SERVICE_WINDOW).ok());
    Window { open: open_until.is_some_and(|until| now < until), last_message_at, open_until }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_open_for_24_hours_after_the_last_message() {
        let t = Timestamp::from_second(1_000_000).unwrap();
        let day = CUSTOMER_SERVICE_WINDOW;
        assert!(window(Some(t), t).open);
        assert!(window(Some(t), t.checked_add(day - SignedDuration::from_secs(1)).unwrap()).open);
        let closed = window(Some(t), t.checked_add(day).unwrap());
        assert_eq!((closed.open, closed.open_until), (false, Some(t.checked_add(day).unwrap())));
        assert_eq!(window(None, t), Window { open: false, last_message_at: None, open_until: None });
    }
}
