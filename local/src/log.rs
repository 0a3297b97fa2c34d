//! Where the stack's lines go: function output, START/END/REPORT lines and the stack's own
//! notices. The command line prints them; tests and benchmarks collect or drop them.

use std::sync::Arc;

/// A sink for whole lines, cheap to clone and shared by every layer of one stack.
#[derive(Clone)]
pub struct Log(Arc<dyn Fn(&str) + Send + Sync>);

impl Log {
    /// Lines go to `sink`.
    pub fn new(sink: impl Fn(&str) + Send + Sync + 'static) -> Log {
        Log(Arc::new(sink))
    }

    /// Lines go to standard output.
    pub fn stdout() -> Log {
        Log::new(|line| println!("{line}"))
    }

    pub fn line(&self, line: &str) {
        (self.0)(line)
    }
}

impl Default for Log {
    fn default() -> Log {
        Log::stdout()
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Log")
    }
}
