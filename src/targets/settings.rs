//! How a pipe uses its targets: the policy (`balance`), the bound on one connect
//! attempt (`connect-timeout`) and active checks (`health-interval`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The default bound on one connect attempt, when `-o` is not shorter: a target that
/// never answers must not use up the time the next one needs.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a new connection chooses among healthy targets (`balance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Balance {
    /// The first healthy target in the order given.
    #[default]
    Failover,
    /// Each healthy target in turn.
    RoundRobin,
    /// The healthy target with the fewest open sessions.
    LeastConnections,
}

/// A `balance` that names no policy.
#[derive(Debug)]
pub(crate) struct UnknownBalance(String);

impl fmt::Display for UnknownBalance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid balance '{}' (expected failover, round-robin or least-connections)",
            self.0
        )
    }
}

impl std::error::Error for UnknownBalance {}

impl FromStr for Balance {
    type Err = UnknownBalance;

    fn from_str(s: &str) -> Result<Balance, UnknownBalance> {
        match s {
            "failover" => Ok(Balance::Failover),
            "round-robin" => Ok(Balance::RoundRobin),
            "least-connections" => Ok(Balance::LeastConnections),
            _ => Err(UnknownBalance(s.to_owned())),
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Balance::Failover => "failover",
            Balance::RoundRobin => "round-robin",
            Balance::LeastConnections => "least-connections",
        })
    }
}

/// A target set's settings, from the pipe's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `balance`.
    pub balance: Balance,
    /// The bound on one connect attempt (see [`connect_timeout`]).
    pub connect_timeout: Duration,
    /// `health-interval`: active checks, this often per target.
    pub health_interval: Option<Duration>,
}

/// The bound on one connect attempt: `configured` (`connect-timeout`), else with
/// `several` targets [`DEFAULT_CONNECT_TIMEOUT`], else `timeout` (`-o`), as before
/// targets had health (a single target behaves as it did); never more than `timeout`,
/// which bounds it all.
pub(crate) fn connect_timeout(
    timeout: Duration,
    configured: Option<Duration>,
    several: bool,
) -> Duration {
    let default = match several {
        true => DEFAULT_CONNECT_TIMEOUT,
        false => timeout,
    };
    configured.unwrap_or(default).min(timeout)
}
