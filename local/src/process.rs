//! Child processes that never outlive the stack, and free loopback ports.

use std::io;
use std::net::TcpListener;

use tokio::process::{Child, Command};

/// Spawns `command` so that it is killed when its handle is dropped (`kill_on_drop`).
///
/// Function instances need nothing more: if the stack dies, their next Runtime API call
/// fails and the Lambda runtime exits. Spawning them without a `pre_exec` hook keeps the
/// spawn on `posix_spawn`, which does not copy the (large) stack process the way `fork`
/// does, and that is a visible share of a cold start.
pub fn spawn_owned(command: &mut Command) -> io::Result<Child> {
    command.kill_on_drop(true);
    command.spawn()
}

/// Like [`spawn_owned`], and on Linux the child is also killed when the stack process dies
/// however it dies (`PR_SET_PDEATHSIG`): for servers such as dynalite that would otherwise
/// outlive a stack killed with SIGKILL.
pub fn spawn_tied(command: &mut Command) -> io::Result<Child> {
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
