//! The users and groups that `-u` and `--socket-owner` name: their grammar
//! ([`UserSpec`]), and looking them up in the system databases (passwd, group) through
//! the C library's reentrant calls.

use std::ffi::{CString, c_char, c_int};
use std::fmt;
use std::io;
use std::str::FromStr;

use crate::errors::describe;

/// The `-u` argument: whom to become after binding the source socket. Also the grammar
/// of `--socket-owner`, as chown(1) has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    /// `-u user`: that user, and that user's primary group.
    User(String),
    /// `-u :group`: only the group.
    Group(String),
    /// `-u user:group`: both.
    UserGroup(String, String),
}

impl UserSpec {
    /// Parses `user`, `:group` or `user:group` given to `option`. Empty names (`:`,
    /// `user:`) are errors rather than "no change", because a script that writes
    /// `-u "$U:$G"` with an unset variable means something, and silently running as
    /// root is the wrong guess.
    pub fn parse(s: &str, option: &'static str) -> Result<UserSpec, UserSpecError> {
        let bad = |why| UserSpecError {
            value: s.to_owned(),
            option,
            why,
        };
        let spec = match s.split_once(':') {
            None if s.is_empty() => return Err(bad(UserSpecProblem::EmptyUser)),
            None => UserSpec::User(s.to_owned()),
            Some(("", "")) => return Err(bad(UserSpecProblem::NoName)),
            Some((_, "")) => return Err(bad(UserSpecProblem::EmptyGroup)),
            Some((_, g)) if g.contains(':') => return Err(bad(UserSpecProblem::TwoColons)),
            Some(("", g)) => UserSpec::Group(g.to_owned()),
            Some((u, g)) => UserSpec::UserGroup(u.to_owned(), g.to_owned()),
        };
        Ok(spec)
    }
}

impl fmt::Display for UserSpec {
    /// As given to `-u`: `user`, `:group` or `user:group`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSpec::User(u) => write!(f, "{u}"),
            UserSpec::Group(g) => write!(f, ":{g}"),
            UserSpec::UserGroup(u, g) => write!(f, "{u}:{g}"),
        }
    }
}

impl FromStr for UserSpec {
    type Err = UserSpecError;

    /// [`UserSpec::parse`] for `-u/--user`.
    fn from_str(s: &str) -> Result<UserSpec, UserSpecError> {
        UserSpec::parse(s, "-u/--user")
    }
}

/// A value of `-u` or `--socket-owner` that is not `user`, `:group` or `user:group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpecError {
    /// The value as given.
    pub value: String,
    /// The option it was given to.
    pub option: &'static str,
    /// What is wrong with it.
    pub why: UserSpecProblem,
}

/// What is wrong with a [`UserSpecError`]'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSpecProblem {
    /// It is empty.
    EmptyUser,
    /// It is a lone `:`.
    NoName,
    /// Nothing follows its `:`.
    EmptyGroup,
    /// It has more than one `:`.
    TwoColons,
}

impl fmt::Display for UserSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.why {
            UserSpecProblem::EmptyUser => "empty user name",
            UserSpecProblem::NoName => "expected user, :group or user:group",
            UserSpecProblem::EmptyGroup => "empty group name after ':'",
            UserSpecProblem::TwoColons => "more than one ':'",
        };
        write!(
            f,
            "invalid value '{}' for {}: {why}",
            self.value, self.option
        )
    }
}

impl std::error::Error for UserSpecError {}

/// A user's uid and primary gid.
pub(super) type UserIds = (libc::uid_t, libc::gid_t);

/// The user (uid and primary gid) and the group (gid) that `spec` names, from the system
/// databases; errors name `option`.
pub(super) fn look_up(
    spec: &UserSpec,
    option: &'static str,
) -> Result<(Option<UserIds>, Option<libc::gid_t>), AccountError> {
    let (user, group) = match spec {
        UserSpec::User(u) => (Some(u.as_str()), None),
        UserSpec::Group(g) => (None, Some(g.as_str())),
        UserSpec::UserGroup(u, g) => (Some(u.as_str()), Some(g.as_str())),
    };
    let user = user.map(|name| {
        let account = Account::new(AccountKind::User, name, option);
        // SAFETY: getpwnam_r fills a passwd, an all-zero one is valid, and keeps to the
        // buffer it is given; the ids are plain integers.
        unsafe { look_up_entry(account, libc::getpwnam_r, |pw| (pw.pw_uid, pw.pw_gid)) }
    });
    let user = user.transpose()?;
    let group = group.map(|name| {
        let account = Account::new(AccountKind::Group, name, option);
        // SAFETY: as above, for getgrnam_r and a group.
        unsafe { look_up_entry(account, libc::getgrnam_r, |gr| gr.gr_gid) }
    });
    Ok((user, group.transpose()?))
}

/// Size of the scratch buffer for the reentrant passwd/group look-ups; ERANGE doubles it.
const LOOKUP_BUF: usize = 4096;

/// A reentrant look-up by name in a system database, as getpwnam_r(3) and getgrnam_r(3).
type GetEntry<T> =
    unsafe extern "C" fn(*const c_char, *mut T, *mut c_char, libc::size_t, *mut *mut T) -> c_int;

/// What `pick` takes from the entry of `account` that `get` finds.
///
/// # Safety
/// An all-zero `T` must be a valid value, and `get` must behave as getpwnam_r(3): given
/// valid pointers and the true size of the buffer, it writes only to the entry, the
/// buffer (which the entry's string fields then point into) and the result pointer.
/// `pick` must not keep those string pointers: the buffer is freed on return.
unsafe fn look_up_entry<T, R>(
    account: Account,
    get: GetEntry<T>,
    pick: impl Fn(&T) -> R,
) -> Result<R, AccountError> {
    let Ok(cname) = CString::new(account.name.as_str()) else {
        return Err(account.fails(AccountProblem::InvalidName));
    };
    let mut buf = vec![0u8; LOOKUP_BUF];
    loop {
        // SAFETY: the caller guarantees an all-zero `T` is valid.
        let mut entry: T = unsafe { std::mem::zeroed() };
        let mut found: *mut T = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, and `buf.len()` is the true size
        // of the buffer; the caller guarantees `get` keeps to them.
        let r = unsafe {
            get(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match r {
            0 if found.is_null() => return Err(account.fails(AccountProblem::Unknown)),
            0 => return Ok(pick(&entry)),
            libc::ERANGE => buf.resize(buf.len() * 2, 0),
            e => {
                let e = io::Error::from_raw_os_error(e);
                return Err(account.fails(AccountProblem::LookupFailed(e)));
            }
        }
    }
}

/// A user or group name given to an option (`-u`, `--socket-owner`).
#[derive(Debug)]
pub(crate) struct Account {
    /// Whether it names a user or a group.
    pub kind: AccountKind,
    /// The name as given.
    pub name: String,
    /// The option that gave it.
    pub option: &'static str,
}

impl Account {
    /// `name`, given to `option` as a user or group.
    fn new(kind: AccountKind, name: &str, option: &'static str) -> Account {
        Account {
            kind,
            name: name.to_owned(),
            option,
        }
    }

    /// The error saying why this account cannot be used.
    fn fails(self, why: AccountProblem) -> AccountError {
        AccountError { account: self, why }
    }
}

/// Which database an [`Account`] is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountKind {
    /// The passwd database.
    User,
    /// The group database.
    Group,
}

/// Why an [`Account`] cannot be used.
#[derive(Debug)]
pub(crate) enum AccountProblem {
    /// The name holds a NUL byte.
    InvalidName,
    /// No such user or group exists.
    Unknown,
    /// The database could not be read.
    LookupFailed(io::Error),
}

/// A user or group that cannot be used, and why.
#[derive(Debug)]
pub(crate) struct AccountError {
    /// The name, its kind and the option that gave it.
    pub account: Account,
    /// Why it cannot be used.
    pub why: AccountProblem,
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountKind::User => "user",
            AccountKind::Group => "group",
        })
    }
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Account { kind, name, option } = &self.account;
        match &self.why {
            AccountProblem::InvalidName => write!(f, "invalid {kind} name '{name}' for {option}"),
            AccountProblem::Unknown => write!(f, "unknown {kind} '{name}' ({option})"),
            AccountProblem::LookupFailed(e) => write!(
                f,
                "cannot look up {kind} '{name}' ({option}): {}",
                describe(e)
            ),
        }
    }
}

impl std::error::Error for AccountError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.why {
            AccountProblem::LookupFailed(e) => Some(e),
            AccountProblem::InvalidName | AccountProblem::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_spec_errors_name_the_option_they_were_given_to() {
        assert_eq!(
            "a:b:c".parse::<UserSpec>().unwrap_err().to_string(),
            "invalid value 'a:b:c' for -u/--user: more than one ':'"
        );
        let e = UserSpec::parse("u:", "--socket-owner").unwrap_err();
        assert_eq!(e.why, UserSpecProblem::EmptyGroup);
        assert_eq!(
            e.to_string(),
            "invalid value 'u:' for --socket-owner: empty group name after ':'"
        );
        assert_eq!(
            UserSpec::parse(":g", "--socket-owner"),
            Ok(UserSpec::Group("g".into()))
        );
    }

    #[test]
    fn account_errors_name_the_kind_the_name_and_the_option() {
        let unknown = |spec, option| look_up(&spec, option).unwrap_err().to_string();
        assert_eq!(
            unknown(UserSpec::User("no-such-user-here".into()), "-u"),
            "unknown user 'no-such-user-here' (-u)"
        );
        assert_eq!(
            unknown(
                UserSpec::Group("no-such-group-here".into()),
                "--socket-owner"
            ),
            "unknown group 'no-such-group-here' (--socket-owner)"
        );
        assert_eq!(
            unknown(UserSpec::User("a\0b".into()), "-u"),
            "invalid user name 'a\0b' for -u"
        );
        // A user that fails is named before its group is looked up.
        assert_eq!(
            unknown(
                UserSpec::UserGroup("no-such-user-here".into(), "root".into()),
                "-u"
            ),
            "unknown user 'no-such-user-here' (-u)"
        );
        assert_eq!(
            look_up(&UserSpec::UserGroup("root".into(), "root".into()), "-u").unwrap(),
            (Some((0, 0)), Some(0))
        );
    }
}
