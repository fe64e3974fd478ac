//! Intake goes first: the processing thread runs at a lower priority than the intake thread.
//!
//! Why: on a machine whose CPUs are saturated (by the traffic itself: the kernel builds NFLOG
//! records in the context of the packets), the two threads compete. When the processing thread
//! wins, intake falls behind, the socket buffer fills and the kernel drops records; when intake
//! wins, the processing loop falls behind and the backlog waits in the spool, where nothing is
//! lost. So the processing thread (the process's main thread, which runs the tokio runtime)
//! raises its own nice value by [`NICE`] once intake is started; threads it starts later
//! inherit that.
//!
//! The processing thread alone is not all intake competes with: the sender's kernel work and
//! every other process on the machine want the same CPUs. So when it may, fwlog first raises
//! the whole process (while root, before `--user`: CAP_SYS_NICE) by [`NICE`], to
//! [`INTAKE_NICE`] at most, then the processing thread takes itself back down by [`NICE`]:
//! started at 0, intake runs at -10, above ordinary processes, and printing at 0, like them. Without that permission (the packaged unit runs
//! as user fwlog without CAP_SYS_NICE; a drop-in with `Nice=-10` does the same from outside)
//! intake stays at the nice value fwlog was started with and printing goes 10 below it. The threads
//! started in between (stderr writer, metrics server) stay at intake's value; they sleep
//! nearly always.
//!
//! Raising one's own nice value needs no capability (lowering it again would need
//! CAP_SYS_NICE, which fwlog never does); it needs the `setpriority` system call, which the
//! packaged unit allows. Where it is refused (a seccomp filter, a container), fwlog says so once
//! and runs on with both threads at the same priority.

/// How much lower the processing thread runs than intake: at nice +10 a CPU-bound thread gets
/// about a tenth of what a nice-0 thread gets when both want the same CPU, and all of any CPU
/// nobody else wants.
pub const NICE: i32 = 10;

/// The highest priority intake asks for: below every nice-0 process, so that a machine
/// saturated by other work (not only by fwlog's own printing) still leaves intake the CPU it
/// needs (about half a microsecond per record). Started at nice 0, the processing thread then
/// runs at `INTAKE_NICE + NICE`, the nice value of ordinary processes.
pub const INTAKE_NICE: i32 = -10;

/// Before the threads start: raise the calling thread (the process's main thread, whose nice
/// value every thread started later inherits) by [`NICE`], to [`INTAKE_NICE`] at most, if the
/// process may (CAP_SYS_NICE, i.e. root before `--user`). Relative, so that fwlog started
/// with `nice -n 5` keeps its intake at -5 and its printing at 5; already at [`INTAKE_NICE`]
/// or higher (a unit's `Nice=`), nothing changes. Returns whether the thread was raised or
/// needed no raise. Without permission it changes nothing and says nothing: intake still goes
/// before the processing thread.
pub fn raise_for_intake() -> bool {
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
        return false;
    }
    if now <= INTAKE_NICE {
        return true;
    }
    let want = (now - NICE).max(INTAKE_NICE);
    // SAFETY: as above.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, who, want) == 0 }
}

/// Lower the calling thread's priority by [`NICE`]; on failure, the one line to print.
pub fn lower_this_thread() -> Result<(), String> {
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
    let want = (now + NICE).min(19);
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
        if raised {
            assert_eq!(after, (before - NICE).max(INTAKE_NICE).min(before));
        } else {
            assert_eq!(after, before);
        }
        // The process (its main thread) is where it was.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, before);
    }

    #[test]
    fn a_thread_lowers_only_itself() {
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (lowered, after) = std::thread::spawn(|| {
            let r = lower_this_thread();
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
