//! Dropping every capability, including root's: a process running as root without
//! `-u` then keeps only what file permissions give uid 0 (owner of most files), which
//! Landlock narrows further.

use std::fmt;

use caps::CapSet;
use caps::errors::CapsError as Failure;

use super::LayerError;

/// A capability set that could not be read or emptied.
#[derive(Debug)]
pub(crate) struct CapsError {
    /// The set being emptied; `None` while reading whether the bounding set can be.
    set: Option<CapSet>,
    error: Failure,
}

impl fmt::Display for CapsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.set {
            None => write!(f, "{}", self.error),
            Some(CapSet::Bounding) => write!(f, "bounding set: {}", self.error),
            Some(CapSet::Ambient) => write!(f, "ambient set: {}", self.error),
            Some(set) => write!(f, "{set:?} set: {}", self.error),
        }
    }
}

impl std::error::Error for CapsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<CapsError> for LayerError {
    fn from(e: CapsError) -> LayerError {
        LayerError::Capabilities(e)
    }
}

/// Empties the bounding, ambient, inheritable, permitted and effective sets of the
/// calling thread (threads started later inherit them). The bounding set goes first,
/// because dropping from it needs `CAP_SETPCAP`, which the last step removes. A process
/// that is not root (after `-u`) has nothing but the bounding set left, and cannot
/// drop from it: under `no_new_privs` it can never be used again, so that is no error.
pub(super) fn drop_all() -> Result<(), CapsError> {
    let privileged = caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .map_err(|error| CapsError { set: None, error })?;
    let clear = |set| {
        caps::clear(None, set).map_err(|error| CapsError {
            set: Some(set),
            error,
        })
    };
    if privileged {
        clear(CapSet::Bounding)?;
    }
    // Ambient capabilities exist since Linux 4.3; an older kernel has none to clear.
    if caps::runtime::ambient_set_supported().is_ok() {
        clear(CapSet::Ambient)?;
    }
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        clear(set)?;
    }
    Ok(())
}
