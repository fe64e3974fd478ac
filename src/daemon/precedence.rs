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
//! Raising one's own nice value needs no capability (lowering it again would need
//! CAP_SYS_NICE, which fwlog never does); it needs the `setpriority` system call, which the
//! packaged unit allows. Where it is refused (a seccomp filter, a container), fwlog says so once
//! and runs on with both threads at the same priority.

/// How much lower the processing thread runs than intake: at nice +10 a CPU-bound thread gets
/// about a tenth of what a nice-0 thread gets when both want the same CPU, and all of any CPU
/// nobody else wants.
pub const NICE: i32 = 10;

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
