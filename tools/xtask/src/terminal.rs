//! Printing that never panics: `println!` panics when stdout is a closed pipe
//! (`cargo xtask run | head`), and a tool should not die for that.

use std::io::{self, Write};

pub fn stdout_line(text: &str) {
    let _ = writeln!(io::stdout(), "{text}");
}

pub fn stderr_line(text: &str) {
    let _ = writeln!(io::stderr(), "{text}");
}
