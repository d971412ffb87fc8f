//! The text console: QEMU's stdout, captured whole and optionally echoed live.

use crate::summary::Summary;
use std::io::{self, Read, Write};

/// Echoes console bytes line by line, holding back a summary line until another
/// non-blank line shows it was not the last: the summary is printed by the caller,
/// after the log, as the last line of the run.
#[derive(Default)]
pub(crate) struct ConsoleEcho {
    partial: Vec<u8>,
    /// A summary line and any blank lines after it.
    held: Vec<u8>,
}

impl ConsoleEcho {
    pub fn feed(&mut self, bytes: &[u8], out: &mut impl Write) -> io::Result<()> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(line, out)?;
        }
        out.flush()
    }

    /// The console ended: echo an unterminated last line. A held summary stays held.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        let rest = std::mem::take(&mut self.partial);
        if !rest.is_empty() {
            self.line(rest, out)?;
        }
        out.flush()
    }

    fn line(&mut self, line: Vec<u8>, out: &mut impl Write) -> io::Result<()> {
        let text = String::from_utf8_lossy(&line);
        if !self.held.is_empty() {
            if text.trim().is_empty() {
                self.held.extend_from_slice(&line);
                return Ok(());
            }
            out.write_all(&std::mem::take(&mut self.held))?;
        }
        if Summary::parse(&text).is_some() {
            self.held = line;
            Ok(())
        } else {
            out.write_all(&line)
        }
    }
}

/// Read the console to its end; with `echo`, print it to stdout as it comes. A stdout
/// that stops accepting output (a closed pipe) stops the echo, never the capture: QEMU
/// would block on a full pipe.
pub(crate) fn capture(mut console: impl Read, echo: bool) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut echo = echo.then(ConsoleEcho::default);
    let mut stdout = io::stdout();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match console.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        all.extend_from_slice(&buffer[..n]);
        if let Some(printer) = &mut echo
            && printer.feed(&buffer[..n], &mut stdout).is_err()
        {
            echo = None;
        }
    }
    if let Some(printer) = &mut echo {
        let _ = printer.finish(&mut stdout);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "cloister: workload 'w' exited 0; exits=1 npf=1 hypercalls=1\n";

    fn echo(chunks: &[&str]) -> String {
        let mut printer = ConsoleEcho::default();
        let mut out = Vec::new();
        for chunk in chunks {
            printer.feed(chunk.as_bytes(), &mut out).unwrap();
        }
        printer.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_echoed_as_they_complete() {
        assert_eq!(echo(&["hel", "lo\nwor", "ld\n"]), "hello\nworld\n");
        assert_eq!(echo(&["no newline at the end"]), "no newline at the end");
    }

    #[test]
    fn the_final_summary_is_held_back() {
        assert_eq!(echo(&["boot\n", SUMMARY, "\r\n"]), "boot\n");
        assert_eq!(echo(&["boot\n", SUMMARY.trim_end()]), "boot\n");
    }

    #[test]
    fn a_summary_followed_by_more_output_is_echoed_in_place() {
        assert_eq!(
            echo(&[SUMMARY, "\n", "panic!\n"]),
            format!("{SUMMARY}\npanic!\n")
        );
    }

    #[test]
    fn capture_keeps_every_byte() {
        let input = format!("a\n{SUMMARY}\u{fffd}tail");
        assert_eq!(capture(input.as_bytes(), false).unwrap(), input.as_bytes());
    }
}
