//! Outside input (a relation value, a program's output) quoted in a log
//! line or a status: cut to a length the reader can take. Its own module
//! because both the hook tools (a status message) and the logger (a
//! `juju-log` line) need it, and neither should import the other for it.

use std::borrow::Cow;

/// `text` cut to at most `max` characters, saying how much was left out:
/// for quoting outside input (a relation value, a program's output) in a
/// log line or a status.
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!(
            "{}... ({} more bytes)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn cuts_on_characters_and_says_how_much_was_left_out() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("exactly10!", 10), "exactly10!");
        assert_eq!(bounded("ééééé", 2), "éé... (6 more bytes)");
    }
}
