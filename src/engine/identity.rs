//! An engine's identity, and what it proves about the process behind it.
//!
//! An engine is named `<hostname>:<pid>:<start>.<n>@<boot id>/<pid ns>`:
//! the host, the process id, the process's start time (clock ticks since
//! boot, `/proc/<pid>/stat` field 22), a counter of the engines this
//! process made, the host's boot (`/proc/sys/kernel/random/boot_id`) and
//! the process's pid namespace (the inode of `/proc/self/ns/pid`). Host,
//! boot, namespace, pid and start time together name one process on one
//! host, never reused: a pid can be reused, but not with the same start
//! time within one boot and namespace.
//!
//! So an engine on the same host, boot and pid namespace can tell that the
//! holder of the store's engine lease is dead ([`holder_is_gone_here`]):
//! its pid is free, or taken by a younger process (or a zombie). A
//! successor then takes the lease over at once instead of waiting for it to
//! expire (`daemon::lease`). Anything it cannot prove (another host, boot
//! or namespace, an identity it cannot parse, a system without `/proc`)
//! is never judged gone: that lease is waited out until it expires.
//!
//! What it must not do: judge a live process gone. A holder is judged on
//! its own pid's `/proc` entry only, and only when this process's `/proc`
//! is its own pid namespace's (the pid in `/proc/self/stat` is ours).

use std::fmt;
use std::sync::OnceLock;

/// A parsed engine identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineIdentity {
    pub hostname: String,
    pub pid: u32,
    /// The process's start time, in clock ticks since boot.
    pub start: u64,
    /// Which of the process's engines (a process may make several).
    pub n: u64,
    pub boot: String,
    /// The pid namespace's inode.
    pub pid_ns: String,
}

impl EngineIdentity {
    /// Reads `<hostname>:<pid>:<start>.<n>@<boot id>/<pid ns>`; `None` for
    /// anything else (an identity from an older weir, say).
    pub fn parse(text: &str) -> Option<EngineIdentity> {
        let (process, place) = text.split_once('@')?;
        let (boot, pid_ns) = place.split_once('/')?;
        let mut parts = process.split(':');
        let (hostname, pid, started) = (parts.next()?, parts.next()?, parts.next()?);
        let (start, n) = started.split_once('.')?;
        let identity = EngineIdentity {
            hostname: hostname.to_owned(),
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
            n: n.parse().ok()?,
            boot: boot.to_owned(),
            pid_ns: pid_ns.to_owned(),
        };
        let plain = |s: &str| !s.is_empty() && !s.contains(['/', '@', ':']);
        (parts.next().is_none()
            && plain(&identity.hostname)
            && plain(&identity.boot)
            && plain(&identity.pid_ns))
        .then_some(identity)
    }

    /// The `n`th engine of this process, when this system shows what an
    /// identity must prove (Linux's `/proc`); `None` elsewhere.
    pub fn this_process(n: u64) -> Option<EngineIdentity> {
        let here = Here::get().as_ref()?;
        Some(EngineIdentity {
            hostname: here.hostname.clone(),
            pid: std::process::id(),
            start: here.start,
            n,
            boot: here.boot.clone(),
            pid_ns: here.pid_ns.clone(),
        })
    }

    /// Whether this identity's process is on this host, boot and pid
    /// namespace, and is gone: its pid names no process, a zombie, or a
    /// process started at another time.
    pub fn is_gone_here(&self) -> bool {
        let Some(here) = Here::get() else {
            return false;
        };
        if (&self.hostname, &self.boot, &self.pid_ns) != (&here.hostname, &here.boot, &here.pid_ns)
        {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            Ok(stat) => match parse_stat(&stat) {
                Some(process) => process.zombie || process.start != self.start,
                None => false,
            },
        }
    }
}

impl fmt::Display for EngineIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}.{}@{}/{}",
            self.hostname, self.pid, self.start, self.n, self.boot, self.pid_ns
        )
    }
}

/// Whether the lease holder named `holder` is provably dead: an engine of
/// this host, boot and pid namespace whose process is gone. False for
/// anything this process cannot prove dead.
pub fn holder_is_gone_here(holder: &str) -> bool {
    EngineIdentity::parse(holder).is_some_and(|identity| identity.is_gone_here())
}

/// This process's host, boot, pid namespace and start time, read once.
struct Here {
    hostname: String,
    boot: String,
    pid_ns: String,
    start: u64,
}

impl Here {
    /// `None` when any of it cannot be read, or `/proc` is not our pid
    /// namespace's (then no holder is ever judged gone).
    fn get() -> &'static Option<Here> {
        static HERE: OnceLock<Option<Here>> = OnceLock::new();
        HERE.get_or_init(|| {
            let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
            let process = parse_stat(&stat)?;
            if process.pid != std::process::id() {
                return None;
            }
            let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
            Some(Here {
                hostname: hostname(),
                boot: read_proc("/proc/sys/kernel/random/boot_id")?,
                pid_ns: pid_namespace(&link.to_string_lossy())?,
                start: process.start,
            })
        })
    }
}

/// The inode of a pid namespace link (`pid:[4026531836]`).
fn pid_namespace(link: &str) -> Option<String> {
    let inode = link.strip_prefix("pid:[")?.strip_suffix(']')?;
    (!inode.is_empty() && inode.bytes().all(|b| b.is_ascii_digit())).then(|| inode.to_owned())
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, PartialEq, Eq)]
struct ProcessStat {
    pid: u32,
    zombie: bool,
    start: u64,
}

/// Reads `pid (comm) state ppid … starttime …`: the command may hold
/// spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<ProcessStat> {
    let (head, rest) = stat.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is the first after the command; field 22 the 20th.
    let state = *fields.first()?;
    Some(ProcessStat {
        pid,
        zombie: matches!(state, "Z" | "X" | "x"),
        start: fields.get(19)?.parse().ok()?,
    })
}

/// This host's name (`localhost` when it cannot be read).
pub(super) fn hostname() -> String {
    read_proc("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into())
}

/// A `/proc` file's trimmed text; `None` when unreadable or empty.
pub(super) fn read_proc(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// This process's start time, for an identity off `/proc` (unique enough
/// to tell engines apart, never judged).
pub(super) fn fallback_start() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> EngineIdentity {
        EngineIdentity::this_process(7).expect("the tests run on Linux")
    }

    #[test]
    fn an_identity_round_trips_through_its_text() {
        let me = me();
        assert_eq!(EngineIdentity::parse(&me.to_string()), Some(me.clone()));
        assert_eq!(me.pid, std::process::id());
        let text = "box-1:4242:314111.3@67449bed-ea9e-490f-b4f5-6a8eb510c44e/4026531836";
        assert_eq!(
            EngineIdentity::parse(text),
            Some(EngineIdentity {
                hostname: "box-1".into(),
                pid: 4242,
                start: 314111,
                n: 3,
                boot: "67449bed-ea9e-490f-b4f5-6a8eb510c44e".into(),
                pid_ns: "4026531836".into(),
            })
        );
    }

    #[test]
    fn identities_it_cannot_read_are_refused_and_never_gone() {
        for text in [
            "",
            "box:4242:18c0ffee.0",
            "box:4242:1.0@boot",
            "box:x:1.0@boot/1",
            "box:1:1@boot/1",
            "box:1:1.0:9@boot/1",
            "box:1:1.0@boot/1/2",
            ":1:1.0@boot/1",
        ] {
            assert_eq!(EngineIdentity::parse(text), None, "{text}");
            assert!(!holder_is_gone_here(text), "{text}");
        }
    }

    #[test]
    fn a_live_process_is_not_gone() {
        let me = me();
        assert!(!me.is_gone_here(), "this test runs");
        assert!(!holder_is_gone_here(&me.to_string()));
        let parent = EngineIdentity {
            pid: std::os::unix::process::parent_id(),
            start: start_of(std::os::unix::process::parent_id()).expect("the parent runs"),
            ..me
        };
        assert!(!parent.is_gone_here(), "the test runner runs");
    }

    fn start_of(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(parse_stat(&stat)?.start)
    }

    #[test]
    fn a_process_that_ended_is_gone_and_a_zombie_too() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let identity = EngineIdentity {
            pid: child.id(),
            start: start_of(child.id()).expect("it runs"),
            ..me()
        };
        assert!(!identity.is_gone_here(), "it runs");
        child.kill().expect("SIGKILL");
        // Killed, not reaped yet: a zombie, which never runs again. Waits
        // until the kernel says it exited, leaving it unreaped (WNOWAIT).
        use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid")).expect("a pid");
        waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        )
        .expect("the killed process exits");
        assert!(identity.is_gone_here(), "a killed process is a zombie");
        child.wait().expect("reaped");
        assert!(identity.is_gone_here(), "reaped: its pid is free");
        assert!(holder_is_gone_here(&identity.to_string()));

        let reused = EngineIdentity {
            pid: std::process::id(),
            start: me().start.wrapping_add(1),
            ..me()
        };
        assert!(reused.is_gone_here(), "its pid now names another process");
    }

    #[test]
    fn a_holder_of_another_host_boot_or_namespace_is_never_gone() {
        let dead = EngineIdentity {
            pid: u32::MAX,
            ..me()
        };
        assert!(dead.is_gone_here(), "no process has that pid");
        for other in [
            EngineIdentity {
                hostname: "elsewhere".into(),
                ..dead.clone()
            },
            EngineIdentity {
                boot: "00000000-0000-0000-0000-000000000000".into(),
                ..dead.clone()
            },
            EngineIdentity {
                pid_ns: "1".into(),
                ..dead.clone()
            },
        ] {
            assert!(!other.is_gone_here(), "{other}");
            assert!(!holder_is_gone_here(&other.to_string()), "{other}");
        }
    }

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let stat = "9077 (a (weird) cmd) S 9071 9071 6686 0 -1 4194304 116 0 0 0 0 0 0 0 20 0 1 0 314111 3133440 357";
        assert_eq!(
            parse_stat(stat),
            Some(ProcessStat {
                pid: 9077,
                zombie: false,
                start: 314111
            })
        );
        assert_eq!(
            pid_namespace("pid:[4026531836]").as_deref(),
            Some("4026531836")
        );
        assert_eq!(pid_namespace("mnt:[4026531836]"), None);
    }
}
