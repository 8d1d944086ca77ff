//! Benchmark: validate a generated repository of 10,000 definitions.
//!
//! `cargo bench --bench validate` writes 2,000 files (each: three tasks, a
//! workflow wiring them, and a scheduled launch plan — 10,000 definitions)
//! to a temporary folder, then times what `weir validate` does: read the
//! tree, parse, check the schema and semantics, compute every digest. It
//! prints definitions per second (median of the runs) and the process's
//! peak resident memory. Target on a 2-core machine: under 1 s, under 300 MB.

#[path = "support/generate.rs"]
mod generate;
#[path = "support/memory.rs"]
mod memory;

use std::time::{Duration, Instant};

use generate::group;

use weir::source::dir::{DEFAULT_MAX_FILE_SIZE, read_tree};
use weir::validate::{Options, validate};

const GROUPS: usize = 2_000;
const RUNS: usize = 7;

fn main() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut bytes = 0;
    for i in 0..GROUPS {
        let text = group(i);
        bytes += text.len();
        let sub = dir.path().join(format!("team-{}", i % 20));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join(format!("pipeline-{i}.yaml")), text).expect("write");
    }
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut definitions = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let tree = read_tree(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("tree");
        let report = validate(tree, &Options::default());
        times.push(start.elapsed());
        assert!(report.is_valid(), "{:?}", report.diagnostics.first());
        assert!(report.entities.iter().all(|e| e.digest.is_some()));
        definitions = report.entities.len();
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "validate: {definitions} definitions in {GROUPS} files ({:.1} MiB of YAML)",
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "validate: median {:.3} s (min {:.3} s, max {:.3} s) over {RUNS} runs = {:.0} definitions/s",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[RUNS - 1].as_secs_f64(),
        definitions as f64 / median.as_secs_f64()
    );
    println!(
        "validate: peak resident memory {}",
        memory::show(memory::peak_mb())
    );
}
