//! Child processes that never outlive the stack, the command that runs a function's
//! binary (under qemu when it is built for another machine), and free loopback ports.

use std::io::{self, Read};
use std::net::TcpListener;
use std::path::Path;

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

/// Where Debian's `libc6-arm64-cross` puts the arm64 loader and libraries.
pub const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// The CPU an ELF executable is built for, from its header (`e_machine`).
pub fn elf_machine(binary: &Path) -> Option<&'static str> {
    let mut header = [0u8; 20];
    std::fs::File::open(binary)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    if &header[..4] != b"\x7fELF" || header[5] != 1 {
        return None;
    }
    match u16::from_le_bytes([header[18], header[19]]) {
        0x3e => Some("x86_64"),
        0xb7 => Some("aarch64"),
        _ => Some("unknown"),
    }
}

/// The command that runs `binary`: itself on its own machine, and an arm64 Lambda
/// `bootstrap` on any other under `qemu-aarch64` with the arm64 loader (Debian packages
/// `qemu-user` and `libc6-arm64-cross`). Says what is missing when it cannot run it.
pub fn program(binary: &Path) -> Result<Command, String> {
    let machine = elf_machine(binary);
    if machine != Some("aarch64") || std::env::consts::ARCH == "aarch64" {
        return Ok(Command::new(binary));
    }
    let qemu = arm64_emulator().ok_or_else(|| {
        format!(
            "{} is an arm64 binary; running it here needs qemu-aarch64 and {ARM64_SYSROOT} \
             (Debian: apt-get install qemu-user libc6-arm64-cross)",
            binary.display()
        )
    })?;
    let mut command = Command::new(qemu);
    command.arg("-L").arg(ARM64_SYSROOT).arg(binary);
    Ok(command)
}

/// `qemu-aarch64` (or Debian's static build) on PATH, if the arm64 loader is there too.
pub fn arm64_emulator() -> Option<std::path::PathBuf> {
    if !Path::new(ARM64_SYSROOT)
        .join("lib/ld-linux-aarch64.so.1")
        .exists()
    {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["qemu-aarch64", "qemu-aarch64-static"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}
