//! Credentials out of URLs: one rule for every URL weir shows or logs, a
//! Git remote's, a database's, a webhook's or an API's.
//!
//! What it guarantees: the result of [`redact_url`] holds no `user:password@`
//! part (the whole user part goes, since a token is often written as the
//! user, `https://TOKEN@github.com/…`) and no value of a password-like query
//! or connection parameter (`password=`, `sslpassword=`, `token=`,
//! `secret=`, whatever their case), which become `***`. Everything else is
//! kept, so the result still says which host, port and database or
//! repository was meant. It is also the identity of a remote source (its key
//! in the store), so a URL's redacted form must never change between
//! releases for a URL without password-like parameters.

/// `url` without its credentials (see the module docs).
pub fn redact_url(url: &str) -> String {
    let without_user = match url.split_once("://") {
        Some((scheme, rest)) => match user_part_end(scheme, rest) {
            Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    redact_parameters(&without_user)
}

/// Where the `@` ending the user part of `scheme://rest` is, if there is one.
///
/// A database URL's password may hold a `/`, a `?` or an `@` its writer did
/// not escape (libpq itself reads a `?` there as part of the password): for
/// those, the user part ends at the last `@` that is not inside a query
/// parameter's value (`?user=u@server`, an `@` after a `?` with a `=` since
/// the last `?` or `&`). The one form left ambiguous, a password holding a
/// `?` and then a `=` before its `@`, is read as a query. A Git URL's path
/// may hold an `@` (`r@v1.git`), so for other schemes the user part ends
/// before the first `/`, `?` or `#`.
fn user_part_end(scheme: &str, rest: &str) -> Option<usize> {
    if !scheme.starts_with("postgres") {
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        return rest[..host_end].rfind('@');
    }
    rest.match_indices('@').map(|(at, _)| at).rev().find(|&at| {
        let before = &rest[..at];
        match before.find('?') {
            None => true,
            Some(_) => {
                let since = before.rfind(['?', '&']).map_or(0, |i| i + 1);
                !before[since..].contains('=')
            }
        }
    })
}

/// Whether a parameter named `key` carries a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("password") || key == "token" || key == "secret" || key == "pass"
}

/// What ends a key or an unquoted value.
const SEPARATORS: [char; 5] = ['?', '&', ';', ' ', '\t'];

/// Masks the values of password-like `key=value` pairs, in a query string
/// (`?a=1&password=x`) or a libpq connection string (`password=x host=h`,
/// `password = x`, `password='a b'`: libpq allows spaces around `=` and a
/// value in single quotes, with `\'` and `\\` escaped inside).
fn redact_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        // The key runs back from `=` (and the blanks before it) to the
        // previous separator.
        let key_end = rest[..eq].trim_end_matches([' ', '\t']).len();
        let key_start = rest[..key_end].rfind(SEPARATORS).map_or(0, |i| i + 1);
        let key = &rest[key_start..key_end];
        let after = &rest[eq + 1..];
        let value_start = eq + 1 + (after.len() - after.trim_start_matches([' ', '\t']).len());
        let value_end = value_end(rest, value_start);
        if is_secret_key(key) && value_end > value_start {
            out.push_str(&rest[..value_start]);
            out.push_str("***");
        } else {
            out.push_str(&rest[..value_end]);
        }
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

/// Where the value starting at `start` in `text` ends: after its closing
/// quote if it is quoted (the rest of `text`, if the quote is never closed),
/// else at the next separator.
fn value_end(text: &str, start: usize) -> usize {
    let value = &text[start..];
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '\'' {
                return start + 1 + i + 1;
            }
        }
        return text.len();
    }
    value
        .find(['&', ';', ' ', '\t', '#'])
        .map_or(text.len(), |i| start + i)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn git_urls_lose_their_user_part() {
        assert_eq!(
            redact_url("https://bob:ghp_SECRET@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            redact_url("https://ghp_SECRET@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            redact_url("https://github.com/o/r@v1.git"),
            "https://github.com/o/r@v1.git"
        );
        assert_eq!(redact_url("/srv/repo"), "/srv/repo");
        assert_eq!(
            redact_url("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
    }

    #[test]
    fn database_urls_lose_their_password_wherever_it_is() {
        assert_eq!(
            redact_url("postgres://u:PW@127.0.0.1:1/missing"),
            "postgres://127.0.0.1:1/missing"
        );
        assert_eq!(
            redact_url("postgres://u:pa/ss#w@db:5432/weir"),
            "postgres://db:5432/weir"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@db:5432/weir?sslmode=require"),
            "postgres://db:5432/weir?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/weir?user=u&password=PW&sslmode=require"),
            "postgres://db/weir?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://db/weir?sslpassword=PW"),
            "postgresql://db/weir?sslpassword=***"
        );
        assert_eq!(
            redact_url("host=db user=u password=PW dbname=weir"),
            "host=db user=u password=*** dbname=weir"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/weir/weir.db?mode=rwc"),
            "sqlite:///var/lib/weir/weir.db?mode=rwc"
        );
    }

    #[test]
    fn a_password_holding_a_question_mark_is_still_removed() {
        assert_eq!(redact_url("postgres://u:pa?ss@db/x"), "postgres://db/x");
        assert_eq!(
            redact_url("postgres://u:p@s?s@db/x?sslmode=require"),
            "postgres://db/x?sslmode=require"
        );
        // An `@` in a query parameter's value is not a user part's end.
        assert_eq!(
            redact_url("postgres://db/x?user=u@server&sslmode=require"),
            "postgres://db/x?user=u@server&sslmode=require"
        );
    }

    #[test]
    fn libpq_passwords_are_masked_with_blanks_or_quotes() {
        assert_eq!(
            redact_url("host=db password = PW dbname=weir"),
            "host=db password = *** dbname=weir"
        );
        assert_eq!(
            redact_url("host=db password='a b' dbname=weir"),
            "host=db password=*** dbname=weir"
        );
        assert_eq!(
            redact_url(r"password = 'it\'s a secret' host=db"),
            "password = *** host=db"
        );
        assert_eq!(redact_url("user='u v' host=db"), "user='u v' host=db");
    }
}
