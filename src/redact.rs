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
        Some((scheme, rest)) => {
            // A database URL's password may hold a `/` its writer did not
            // escape: for those, the user part ends at the last `@` before
            // the query (a Git URL's path may hold an `@`, `r@v1.git`).
            let host_end = if scheme.starts_with("postgres") {
                rest.find('?').unwrap_or(rest.len())
            } else {
                rest.find(['/', '?', '#']).unwrap_or(rest.len())
            };
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    redact_parameters(&without_user)
}

/// Whether a parameter named `key` carries a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("password") || key == "token" || key == "secret" || key == "pass"
}

/// Masks the values of password-like `key=value` pairs, in a query string
/// (`?a=1&password=x`) or a libpq connection string (`password=x host=h`).
fn redact_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        // The key runs back from `=` to the previous separator.
        let key_start = rest[..eq]
            .rfind(['?', '&', ';', ' ', '\t'])
            .map_or(0, |i| i + 1);
        let key = &rest[key_start..eq];
        let value_end = rest[eq + 1..]
            .find(['&', ';', ' ', '\t', '#'])
            .map_or(rest.len(), |i| eq + 1 + i);
        out.push_str(&rest[..=eq]);
        if is_secret_key(key) && value_end > eq + 1 {
            out.push_str("***");
        } else {
            out.push_str(&rest[eq + 1..value_end]);
        }
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
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
}
