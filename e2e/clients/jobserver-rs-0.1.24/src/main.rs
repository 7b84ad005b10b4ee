//! A small "build" on jobserver-rs 0.1.24: `THREADS` threads share `JOBS`
//! jobs of `JOB_MS` each; every job holds one token from
//! `jobserver::Client::from_env()` (acquired with `Client::acquire`, which
//! retries EINTR) and appends `start|end rs-jobN NS` to the stamps file.
//!
//! Usage: jobserver-rs-client THREADS JOBS JOB_MS STAMPS
//! Exit 0 when all jobs ran; 1 on any jobserver error (printed); 3 when
//! `from_env` found no jobserver it understands (printed as `no jobserver`).
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn stamp(path: &str, kind: &str, job: usize) {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    // One write(2) per line: the other threads append to the same file.
    file.write_all(format!("{} rs-job{} {}\n", kind, job, ns).as_bytes())
        .unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args[1].parse().unwrap();
    let jobs: usize = args[2].parse().unwrap();
    let job_ms: u64 = args[3].parse().unwrap();
    let stamps = Arc::new(args[4].clone());
    // Safety: called first thing, before any descriptor could be reused.
    let client = match unsafe { jobserver::Client::from_env() } {
        Some(client) => client,
        None => {
            println!("no jobserver");
            std::process::exit(3);
        }
    };
    println!("jobserver found");
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (client, next, stamps) = (client.clone(), next.clone(), stamps.clone());
            std::thread::spawn(move || -> std::io::Result<()> {
                loop {
                    let job = next.fetch_add(1, Ordering::SeqCst);
                    if job >= jobs {
                        return Ok(());
                    }
                    let token = client.acquire()?;
                    stamp(&stamps, "start", job);
                    std::thread::sleep(Duration::from_millis(job_ms));
                    stamp(&stamps, "end", job);
                    drop(token); // writes the byte back
                }
            })
        })
        .collect();
    let mut failed = false;
    for worker in workers {
        if let Err(error) = worker.join().unwrap() {
            eprintln!("jobserver error: {}", error);
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
    println!("done {}", jobs);
}
