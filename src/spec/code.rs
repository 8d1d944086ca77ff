//! Where a task's text is code: the one rule, shared by validation (W036)
//! and the engine, of which `{{ inputs.x }}` would run as code, and the one
//! name of the variable a task reads an input from instead.
//!
//! Why it exists: validation refuses a string input written into code, and
//! the engine must refuse at run time exactly what validation refuses, for
//! versions registered before the check (or by a path that skipped it). Two
//! copies of the rule would drift; this module is the only copy.
//!
//! What is recognised in a container's `command` + `args` (DESIGN.md §3):
//! a shell's `-c` script (`sh`, `bash`, `dash`, `zsh`, `ksh`, `ash`, by
//! base name, with `-c` alone or among other flags: `bash -ec`), Python's
//! `-c` (`python`, `python3`, `python3.12`), Perl's and Ruby's `-e`/`-E`,
//! Node's `-e`/`--eval`/`-p`/`--print`, each also behind `env` (its options
//! and `NAME=value` assignments skipped). Not recognised, and documented as
//! such: a program that reads code from a file or stdin, `env -S`, `xargs`,
//! `find -exec`, `ssh host cmd`, `su -c`, interpreters under other names.
//! Those are data to weir; a task author who writes them runs what they
//! write.

/// How an interpreter reads an environment variable, for a help line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Shell,
    Python,
    Perl,
    Ruby,
    Node,
}

impl Language {
    /// How code in this language reads `variable` from the environment.
    pub fn reads(self, variable: &str) -> String {
        match self {
            Language::Shell => format!("\"${variable}\""),
            Language::Python => format!("os.environ[\"{variable}\"]"),
            Language::Perl => format!("$ENV{{{variable}}}"),
            Language::Ruby => format!("ENV[\"{variable}\"]"),
            Language::Node => format!("process.env.{variable}"),
        }
    }
}

/// The variable carrying input `name`: `WEIR_INPUT_<NAME>`, upper-cased,
/// `-` as `_`.
pub fn input_variable_name(name: &str) -> String {
    format!("WEIR_INPUT_{}", name.to_uppercase().replace('-', "_"))
}

/// The index in `argv` (a container's `command` then `args`) of the element
/// an interpreter runs as code, and its language, when `argv` starts one
/// with its inline-code flag (see the module docs for what is recognised).
pub fn code_argument<S: AsRef<str>>(argv: &[S]) -> Option<(usize, Language)> {
    let mut start = 0;
    if base_name(argv.first()?.as_ref()) == "env" {
        start = 1;
        while let Some(arg) = argv.get(start).map(AsRef::as_ref) {
            match arg {
                // Options taking a value as the next argument.
                "-u" | "--unset" | "-C" | "--chdir" => start += 2,
                "-S" | "--split-string" => return None,
                "--" => {
                    start += 1;
                    break;
                }
                _ if arg.starts_with('-') || arg.contains('=') => start += 1,
                _ => break,
            }
        }
    }
    let program = base_name(argv.get(start)?.as_ref());
    let language = language_of(program)?;
    let flag = argv[start + 1..].iter().position(|a| {
        let a = a.as_ref();
        match language {
            Language::Shell => short_flags(a).is_some_and(|f| f.contains('c')),
            Language::Python => short_flags(a).is_some_and(|f| f.ends_with('c')),
            Language::Perl | Language::Ruby => {
                short_flags(a).is_some_and(|f| f.ends_with('e') || f.ends_with('E'))
            }
            Language::Node => matches!(a, "-e" | "--eval" | "-p" | "--print"),
        }
    })?;
    let index = start + 1 + flag + 1;
    (index < argv.len()).then_some((index, language))
}

/// The program's base name (`/bin/sh` → `sh`).
fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// The letters of a short-option argument (`-ec` → `ec`), if it is one.
fn short_flags(arg: &str) -> Option<&str> {
    arg.strip_prefix('-')
        .filter(|flags| !flags.is_empty() && !flags.starts_with('-'))
}

fn language_of(program: &str) -> Option<Language> {
    const SHELLS: [&str; 6] = ["sh", "bash", "dash", "zsh", "ksh", "ash"];
    if SHELLS.contains(&program) {
        return Some(Language::Shell);
    }
    let version = |prefix: &str| {
        program
            .strip_prefix(prefix)
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    if version("python") {
        Some(Language::Python)
    } else if version("perl") {
        Some(Language::Perl)
    } else if version("ruby") {
        Some(Language::Ruby)
    } else if program == "node" || program == "nodejs" {
        Some(Language::Node)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{Language, code_argument, input_variable_name};

    #[test]
    fn the_code_argument_of_each_recognised_form() {
        type Case<'a> = (&'a [&'a str], Option<(usize, Language)>);
        let cases: [Case<'_>; 12] = [
            (&["sh", "-c", "echo"], Some((2, Language::Shell))),
            (
                &["/bin/bash", "-ec", "echo", "x"],
                Some((2, Language::Shell)),
            ),
            (&["env", "sh", "-c", "echo"], Some((3, Language::Shell))),
            (
                &["/usr/bin/env", "-i", "A=1", "-u", "B", "bash", "-c", "echo"],
                Some((7, Language::Shell)),
            ),
            (&["python3", "-c", "print()"], Some((2, Language::Python))),
            (
                &["python3.12", "-Bc", "print()"],
                Some((2, Language::Python)),
            ),
            (&["perl", "-e", "print"], Some((2, Language::Perl))),
            (&["node", "--eval", "1"], Some((2, Language::Node))),
            (&["echo", "-c", "x"], None),
            (&["sh", "script.sh"], None),
            (&["sh", "-c"], None),
            (&["env", "-S", "sh -c x"], None),
        ];
        for (argv, expected) in cases {
            assert_eq!(code_argument(argv), expected, "{argv:?}");
        }
    }

    #[test]
    fn an_input_s_variable_is_upper_cased_with_underscores() {
        assert_eq!(input_variable_name("max-rows"), "WEIR_INPUT_MAX_ROWS");
    }
}
