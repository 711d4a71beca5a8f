//! Signal names and numbers as `kill` takes them (`TERM`, `SIGTERM`, `15`). Pure.

use nix::sys::signal::Signal;

/// Errors parsing a signal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown signal {0:?}")]
pub struct BadSignal(pub String);

/// Parses a signal as runc does: a number, or a name with or without `SIG`, any case.
pub fn parse(s: &str) -> Result<Signal, BadSignal> {
    let bad = || BadSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for (s, want) in [
            ("9", Signal::SIGKILL),
            ("KILL", Signal::SIGKILL),
            ("SIGKILL", Signal::SIGKILL),
            ("term", Signal::SIGTERM),
            ("SIGUSR1", Signal::SIGUSR1),
            ("HUP", Signal::SIGHUP),
        ] {
            assert_eq!(parse(s), Ok(want), "{s}");
        }
        for s in ["", "0", "65", "SIGNOPE", "-1", "KILL9"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
