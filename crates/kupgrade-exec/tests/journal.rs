//! The journal across processes: a lock held elsewhere is refused, and a writer killed with
//! SIGKILL leaves a journal that reopens with every committed record.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kupgrade_exec::{Journal, JournalError};

const CHILD_ENV: &str = "KUPGRADE_JOURNAL_TEST_WRITER";

type Record = (u64, String);

/// Not a test on its own: when re-executed with `CHILD_ENV` set, appends records until killed.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mut journal, recovered) = Journal::<Record>::open(&path).unwrap();
    let mut next = recovered.records.len() as u64;
    loop {
        // Long enough records that a kill often lands mid-write.
        journal.append(&(next, "x".repeat(4096))).unwrap();
        next += 1;
    }
}

fn spawn_writer(path: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for_records(path: &Path, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = Journal::<Record>::read(path)
            && r.records.len() >= at_least
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the writer did not write {at_least} records");
}

#[test]
fn a_writer_killed_mid_run_leaves_every_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.journal");
    let mut expected = 0;
    for round in 0..5 {
        let mut child = spawn_writer(&path);
        wait_for_records(&path, expected + 10 + round * 7);
        // While it runs, the journal is locked.
        assert!(matches!(
            Journal::<Record>::open(&path),
            Err(JournalError::Locked { .. })
        ));
        child.kill().unwrap(); // SIGKILL, by the PID we started
        child.wait().unwrap();

        let (mut journal, recovered) = Journal::<Record>::open(&path).unwrap();
        let n = recovered.records.len();
        assert!(n >= expected + 10, "round {round}: {n} records");
        for (i, (seq, text)) in recovered.records.iter().enumerate() {
            assert_eq!(*seq, i as u64, "round {round}: records out of order");
            assert_eq!(text.len(), 4096);
        }
        if let Some(torn) = &recovered.torn {
            assert_eq!(torn.line, n + 1);
        }
        // Appending after recovery continues the sequence on a clean line.
        journal.append(&(n as u64, "x".repeat(4096))).unwrap();
        expected = n + 1;
    }
    let r = Journal::<Record>::read(&path).unwrap();
    assert_eq!(r.records.len(), expected);
    assert_eq!(r.torn, None);
}

#[test]
fn a_lock_held_by_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.journal");
    drop(Journal::<Record>::open(&path).unwrap());
    // One process holds the lock: the shell opens the file, flock(1) (util-linux, the same
    // flock(2) lock as File::try_lock) locks that descriptor, and the shell becomes `sleep`,
    // keeping it. Killing that one PID releases the lock.
    let mut holder = Command::new("sh")
        .args(["-c", "exec 9>>\"$1\" && flock 9 && exec sleep 60", "sh"])
        .arg(&path)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Journal::<Record>::open(&path) {
            Err(JournalError::Locked { path: p }) => {
                assert_eq!(p, path);
                break;
            }
            Ok(j) => drop(j), // flock has not taken it yet
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    let (mut journal, _) = Journal::<Record>::open(&path).unwrap();
    journal.append(&(0, "after".into())).unwrap();
}
