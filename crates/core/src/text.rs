//! Text made fit for a one-line message: error chains joined, guest text cut short.

/// A duration as people read it, to the millisecond ("1s 250ms", not "1s 249ms 737us 910ns").
pub fn duration(d: std::time::Duration) -> String {
    let millis = (d.as_nanos() + 500_000) / 1_000_000;
    let rounded = std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
    humantime::format_duration(rounded).to_string()
}

/// At most `max` characters of `text`, marked when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// `text` from outside (a file, a flag, a component, a client) as a message quotes it: at most
/// `max` characters, marked when cut, and on one line with control characters escaped.
pub fn quote(text: &str, max: usize) -> String {
    escape_controls(&truncate(text, max))
}

/// Joins a multi-line message (wasmtime's error chains) into one line. Control characters
/// (such as a terminal's escape sequences, which an error may quote from a hostile file) are
/// shown escaped, never passed to the terminal.
pub fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `error` and its causes as one line ("error sending request: operation timed out"), for
/// errors whose own message leaves the cause out; a cause the line already says is not
/// repeated.
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    one_line(&text)
}

/// `text` with every control character escaped (`\u{1b}`).
pub fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// 1-based line and column of the byte `offset` in `text` (for messages about a file).
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_errors_causes_follow_it_once_each() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out");
        let sending = std::io::Error::other(Wrapped("error sending request", io));
        assert_eq!(
            causes(&sending),
            "error sending request: operation timed out"
        );
        // A message that already quotes its cause does not say it twice.
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let quoting = Wrapped("read failed: timed out", io);
        assert_eq!(causes(&quoting), "read failed: timed out");
    }

    /// An error with a message of its own and a cause it does not quote.
    #[derive(Debug)]
    struct Wrapped(&'static str, std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn control_characters_are_escaped_not_sent_to_the_terminal() {
        assert_eq!(
            one_line("bad \u{1b}[2J\u{7}line\r\nnext"),
            "bad \\u{1b}[2J\\u{7}line; next"
        );
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn durations_are_shown_to_the_millisecond() {
        let d = |nanos: u64| duration(std::time::Duration::from_nanos(nanos));
        assert_eq!(d(999_737_910), "1s");
        assert_eq!(d(1_249_737_910), "1s 250ms");
        assert_eq!(d(400_000), "0s");
        assert_eq!(d(5_000_000_000), "5s");
    }

    #[test]
    fn multi_line_errors_become_one_line() {
        assert_eq!(
            one_line("failed\n\nCaused by:\n    eof\n"),
            "failed; Caused by:; eof"
        );
    }

    #[test]
    fn long_text_is_cut_and_marked() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("ééé", 2), "éé…");
    }
}
