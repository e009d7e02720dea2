//! Dropping every capability, including root's: a process running as root without
//! `-u` then keeps only what file permissions give uid 0 (owner of most files), which
//! Landlock narrows further.

use caps::CapSet;

/// Empties the bounding, ambient, inheritable, permitted and effective sets of the
/// calling thread (threads started later inherit them). The bounding set goes first,
/// because dropping from it needs `CAP_SETPCAP`, which the last step removes. A process
/// that is not root (after `-u`) has nothing but the bounding set left, and cannot
/// drop from it: under `no_new_privs` it can never be used again, so that is no error.
pub fn drop_all() -> Result<(), String> {
    let privileged = caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .map_err(|e| e.to_string())?;
    if privileged {
        caps::clear(None, CapSet::Bounding).map_err(|e| format!("bounding set: {e}"))?;
    }
    // Ambient capabilities exist since Linux 4.3; an older kernel has none to clear.
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(|e| format!("ambient set: {e}"))?;
    }
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(|e| format!("{set:?} set: {e}"))?;
    }
    Ok(())
}
