//! Child processes that never outlive the stack, and free loopback ports.

use std::io;
use std::net::TcpListener;

use tokio::process::{Child, Command};

/// Spawns `command` so that it is killed when the stack exits, however the stack exits:
/// on drop (`kill_on_drop`) and, on Linux, when the stack process dies (`PR_SET_PDEATHSIG`).
pub fn spawn_owned(command: &mut Command) -> io::Result<Child> {
    command.kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
