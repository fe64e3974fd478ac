//! Intake goes first: the processing thread runs at a lower priority than the intake thread,
//! and below ordinary processes.
//!
//! Why: on a machine whose CPUs are saturated (by the traffic itself: the kernel builds NFLOG
//! records in the context of the packets), the threads compete with each other and with the
//! rest of the machine. When the processing thread wins, intake falls behind, the socket buffer
//! fills and the kernel drops records; when intake wins, the processing loop falls behind and
//! the backlog waits in the spool, where nothing is lost. Printing also gives way to the
//! machine's own work (the sender's kernel work among it): its backlog is safe in the spool
//! and it catches up when the burst is over, so there is no reason for it to take CPU from
//! anything else while the CPUs are short.
//!
//! The rule: the processing thread (the process's main thread, which runs the tokio runtime)
//! runs [`NICE`] below the nice value fwlog was started with; intake runs at that value, or,
//! when fwlog may (while root, before `--user`: CAP_SYS_NICE), [`NICE`] above it, to
//! [`INTAKE_NICE`] at most. Started at 0 as root, intake runs at -10 (above ordinary
//! processes) and printing at +10; the packaged unit (user fwlog without CAP_SYS_NICE) runs
//! intake at 0 and printing at +10 alike; a drop-in with `Nice=-10` gives intake -10 and
//! printing 0. So fwlog first raises the whole process (its main thread, whose value every
//! thread started later inherits) for intake, then the processing thread lowers itself by what
//! was raised plus [`NICE`]; threads it starts later (the committer) inherit that. The threads
//! started in between (stderr writer, metrics server) stay at intake's value; they sleep
//! nearly always.
//!
//! The spool's sync thread (`fwlog-spool-sync`) runs at intake's value too: the spool's first
//! commit starts it on the thread that commits, intake's. It is intake's other half: what it
//! has not synced the processing loop may not print, and intake waits for it when more than
//! the spool's cap is unsynced, at every segment rollover, at exit, and (when it is busy) in
//! NFQUEUE and hold mode. It sleeps in the disk nearly always (its CPU is the kernel's sync
//! work, about half of intake's per record), so it takes little from intake, while below
//! intake or ordinary processes every wake-up after a sync would wait for their time slices
//! (each a delay of every record it publishes), and a machine busy with other work could hold
//! it back until intake reaches the cap and stops receiving.
//!
//! A nice +10 thread still gets about a tenth of a contended CPU against nice-0 work and all
//! of any CPU nobody else wants, so printing, the counters (SIGUSR1) and the watchdog are
//! slowed under saturation, never starved (SCHED_IDLE starved them; BENCHMARKS.md).
//!
//! Raising one's own nice value needs no capability (lowering it again would need
//! CAP_SYS_NICE, which fwlog never does); it needs the `setpriority` system call, which the
//! packaged unit allows. Where it is refused (a seccomp filter, a container), fwlog says so once
//! and runs on with both threads at the same priority.

/// How much lower the processing thread runs than the value fwlog was started with: at nice
/// +10 a CPU-bound thread gets about a tenth of what a nice-0 thread gets when both want the
/// same CPU, and all of any CPU nobody else wants.
pub const NICE: i32 = 10;

/// The highest priority intake asks for: below every nice-0 process, so that a machine
/// saturated by other work (not only by fwlog's own printing) still leaves intake the CPU it
/// needs (about half a microsecond per record).
pub const INTAKE_NICE: i32 = -10;

/// Before the threads start: raise the calling thread (the process's main thread, whose nice
/// value every thread started later inherits) by [`NICE`], to [`INTAKE_NICE`] at most, if the
/// process may (CAP_SYS_NICE, i.e. root before `--user`). Relative, so that fwlog started
/// with `nice -n 5` runs its intake at -5 and its printing at 15; already at [`INTAKE_NICE`]
/// or higher (a unit's `Nice=`), nothing changes. Returns by how much the thread was raised
/// (0 when it was not), for [`lower_this_thread`]. Without permission it changes nothing and
/// says nothing: intake still goes before the processing thread.
pub fn raise_for_intake() -> i32 {
    // SAFETY: gettid has no preconditions.
    let who = unsafe { libc::gettid() } as libc::id_t;
    // SAFETY: errno is thread-local; see lower_this_thread for why it is cleared.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain system call on this thread's id.
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, who) };
    if now == -1
        && std::io::Error::last_os_error()
            .raw_os_error()
            .is_some_and(|e| e != 0)
    {
        return 0;
    }
    if now <= INTAKE_NICE {
        return 0;
    }
    let want = (now - NICE).max(INTAKE_NICE);
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, who, want) } == 0 {
        now - want
    } else {
        0
    }
}

/// Lower the calling thread's priority by what [`raise_for_intake`] raised it (`raised`) plus
/// [`NICE`]: [`NICE`] below the value fwlog was started with. On failure, the one line to
/// print.
pub fn lower_this_thread(raised: i32) -> Result<(), String> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // On Linux, PRIO_PROCESS with a thread id applies to that thread only.
    let who = tid as libc::id_t;
    // getpriority returns the nice value, and -1 is a valid one: clear errno to tell.
    // SAFETY: errno is thread-local; writing it is how getpriority(2) says to check.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain system call on this thread's id.
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, who) };
    let err = std::io::Error::last_os_error();
    if now == -1 && err.raw_os_error().is_some_and(|e| e != 0) {
        return Err(refused(err));
    }
    let want = (now + raised.max(0) + NICE).min(19);
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, who, want) } != 0 {
        return Err(refused(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn refused(e: std::io::Error) -> String {
    format!(
        "cannot lower the processing thread's priority ({e}); under CPU saturation intake \
         competes with it on equal terms (fwlog(8), PRIORITIES)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_raises_itself_by_nice_at_most_to_intake_nice() {
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (raised, after) = std::thread::spawn(|| {
            let r = raise_for_intake();
            let tid = unsafe { libc::gettid() } as libc::id_t;
            (r, unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) })
        })
        .join()
        .unwrap();
        // Raised to the target, or (no CAP_SYS_NICE, or already there) left alone.
        assert_eq!(after, before - raised);
        if raised > 0 {
            assert_eq!(after, (before - NICE).max(INTAKE_NICE));
        }
        // The process (its main thread) is where it was.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, before);
    }

    #[test]
    fn printing_ends_nice_below_the_start_value_whatever_intake_got() {
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (raised, printing) = std::thread::spawn(|| {
            let raised = raise_for_intake();
            let r = lower_this_thread(raised);
            let tid = unsafe { libc::gettid() } as libc::id_t;
            r.unwrap();
            (raised, unsafe {
                libc::getpriority(libc::PRIO_PROCESS, tid)
            })
        })
        .join()
        .unwrap();
        assert!(raised >= 0);
        assert_eq!(printing, (before + NICE).min(19));
        // The process (its main thread) is where it was.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, before);
    }

    fn nice_of(tid: i32) -> i32 {
        unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
    }

    /// The spool is opened on the process's main thread before intake's raise (as the daemon
    /// does); its sync thread, started by intake's first commit, runs at intake's value.
    #[test]
    fn the_spool_sync_thread_runs_at_intakes_priority() {
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let dir = tempfile::tempdir().unwrap();
        let opts = fwlog_spool::Options {
            background_sync: true,
            ..fwlog_spool::Options::default()
        };
        let (mut w, _r, _) = fwlog_spool::Spool::open(dir.path(), opts).unwrap();
        let (raised, intake, sync) = std::thread::spawn(move || {
            let raised = raise_for_intake();
            w.append(b"record").unwrap();
            w.commit().unwrap();
            let tid = w
                .sync_thread_id()
                .expect("the commit started the sync thread");
            let intake = nice_of(unsafe { libc::gettid() });
            let sync = nice_of(tid);
            w.close().unwrap();
            (raised, intake, sync)
        })
        .join()
        .unwrap();
        assert_eq!(intake, before - raised);
        assert_eq!(sync, intake, "raised by {raised}");
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, before);
    }

    #[test]
    fn a_thread_lowers_only_itself() {
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (lowered, after) = std::thread::spawn(|| {
            let r = lower_this_thread(0);
            let tid = unsafe { libc::gettid() } as libc::id_t;
            (r, unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) })
        })
        .join()
        .unwrap();
        lowered.unwrap();
        assert_eq!(after, (before + NICE).min(19));
        // The process (its main thread) is where it was.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, before);
    }
}
