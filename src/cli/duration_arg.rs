//! A duration given on the command line (`--tick 1s`, `--lease-duration
//! 15s`), written as definitions write durations (`crate::spec::duration`),
//! so that a flag's default can come from the constant that defines it and
//! `--help` shows it as a user would type it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A flag's duration: parsed with `crate::spec::duration::parse`, shown in
/// whole seconds (`60s`) or, below a second's precision, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl FromStr for DurationArg {
    type Err = crate::spec::duration::Error;

    fn from_str(text: &str) -> Result<DurationArg, Self::Err> {
        crate::spec::duration::parse(text).map(DurationArg)
    }
}

impl fmt::Display for DurationArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_millis() == 0 {
            write!(f, "{}s", self.0.as_secs())
        } else {
            write!(f, "{}ms", self.0.as_millis())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_reads_back_as_itself() {
        for d in [
            Duration::from_secs(60),
            Duration::from_secs(1),
            Duration::from_millis(1500),
        ] {
            let shown = DurationArg(d).to_string();
            assert_eq!(shown.parse::<DurationArg>(), Ok(DurationArg(d)), "{shown}");
        }
        assert_eq!(DurationArg(Duration::from_secs(60)).to_string(), "60s");
    }
}
