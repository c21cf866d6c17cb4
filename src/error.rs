//! One error mechanism for the whole tool: every failure is an `anyhow::Error`; the ones caused
//! by the user's input (a file, a row, a key, a flag) carry a [`BadInput`] somewhere in their
//! chain, which turns the exit code into 2. Everything else is a runtime failure (exit 1).

use std::fmt;

/// Marks an error as the user's to fix: bad config, bad data, bad flag, bad checkpoint.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Exit codes, as documented in the README.
pub const EXIT_OK: i32 = 0;
pub const EXIT_RUNTIME: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;

/// Builds a bad-input error from a message.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// `bail!` for bad input: `bail_input!("row {row}: expected a number")`.
#[macro_export]
macro_rules! bail_input {
    ($($arg:tt)*) => {
        return Err($crate::error::bad_input(format!($($arg)*)))
    };
}

/// The exit code an error deserves.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|e| e.is::<BadInput>()) {
        EXIT_BAD_INPUT
    } else {
        EXIT_RUNTIME
    }
}

/// The one line printed for an error: its context chain, outermost first.
pub fn one_line(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err.chain().map(|e| e.to_string()).collect();
    let mut line = String::new();
    for part in parts {
        // Context layers often repeat the message below them; print each piece once.
        if !line.contains(&part) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&part);
        }
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_anywhere_in_the_chain_means_exit_2() {
        let err = Err::<(), _>(bad_input("row 3: expected a number"))
            .context("reading data/x.csv")
            .unwrap_err();
        assert_eq!(exit_code(&err), EXIT_BAD_INPUT);
        assert_eq!(
            one_line(&err),
            "reading data/x.csv: row 3: expected a number"
        );
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), EXIT_RUNTIME);
    }
}
