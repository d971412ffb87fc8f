//! The hypervisor's log: defmt frames on the second UART, which QEMU writes to a file.
//! Decoding needs the image's `.defmt` section, which maps frame indices to format
//! strings, so the image must stay unstripped.

use crate::error::Error;
use defmt_decoder::{DecodeError, StreamDecoder, Table};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the tail waits for QEMU to write more frames.
const TAIL_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    fn from_name(name: &str) -> Option<LogLevel> {
        [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ]
        .into_iter()
        .find(|level| level.as_str() == name)
    }
}

/// One decoded log message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `None` for `defmt::println!`, which has no level.
    pub level: Option<LogLevel>,
    /// Only if the image defines a defmt timestamp.
    pub timestamp: Option<String>,
    pub text: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Some(level) => write!(f, "[log {}] ", level.as_str())?,
            None => f.write_str("[log] ")?,
        }
        if let Some(timestamp) = &self.timestamp {
            write!(f, "{timestamp} ")?;
        }
        f.write_str(&self.text)
    }
}

/// The defmt table of the ELF at `elf`; `None` if it has no `.defmt` section.
pub(crate) fn read_table(elf: &Path) -> Result<Option<Table>, Error> {
    let bytes = std::fs::read(elf).map_err(Error::io(format!("cannot read {}", elf.display())))?;
    Table::parse(&bytes).map_err(|e| Error::DefmtTable {
        elf: elf.to_path_buf(),
        message: format!("{e:#}"),
    })
}

/// A stream of frame bytes in, log lines out.
pub(crate) struct LogDecoder<'t> {
    stream: Box<dyn StreamDecoder + Send + Sync + 't>,
    /// After a bad frame, an encoding that cannot resynchronise only yields garbage.
    can_recover: bool,
    gave_up: bool,
    pub malformed: usize,
}

impl<'t> LogDecoder<'t> {
    pub fn new(table: &'t Table) -> LogDecoder<'t> {
        LogDecoder {
            stream: table.new_stream_decoder(),
            can_recover: table.encoding().can_recover(),
            gave_up: false,
            malformed: 0,
        }
    }

    /// Decode what `bytes` completes; a frame cut short waits for the next call.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<LogLine> {
        let mut lines = Vec::new();
        if self.gave_up {
            return lines;
        }
        self.stream.received(bytes);
        loop {
            match self.stream.decode() {
                Ok(frame) => lines.push(LogLine {
                    level: frame
                        .level()
                        .and_then(|level| LogLevel::from_name(level.as_str())),
                    timestamp: frame.display_timestamp().map(|t| t.to_string()),
                    text: frame.display_message().to_string(),
                }),
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => {
                    self.malformed += 1;
                    if !self.can_recover {
                        self.gave_up = true;
                        break;
                    }
                }
            }
        }
        lines
    }
}

/// Everything that came through the log UART.
#[derive(Debug, Default)]
pub(crate) struct LogCapture {
    pub raw: Vec<u8>,
    pub lines: Vec<LogLine>,
    pub malformed: usize,
}

/// Follow `file` as QEMU writes it until `finished` is set, then read the rest. With a
/// table, decode as it comes, printing each line to stderr if `echo`.
pub(crate) fn tail(
    file: &Path,
    table: Option<&Table>,
    finished: &AtomicBool,
    echo: bool,
) -> io::Result<LogCapture> {
    let mut input = File::open(file)?;
    let mut decoder = table.map(LogDecoder::new);
    let mut capture = LogCapture::default();
    loop {
        // Checked before reading, so the last read sees everything QEMU wrote.
        let last_round = finished.load(Ordering::Acquire);
        let mut chunk = Vec::new();
        input.read_to_end(&mut chunk)?;
        if let Some(decoder) = &mut decoder {
            for line in decoder.feed(&chunk) {
                if echo {
                    // A closed stderr must not stop the capture.
                    let _ = writeln!(io::stderr(), "{line}");
                }
                capture.lines.push(line);
            }
        }
        capture.raw.extend_from_slice(&chunk);
        if last_round {
            break;
        }
        if chunk.is_empty() {
            std::thread::sleep(TAIL_INTERVAL);
        }
    }
    capture.malformed = decoder.map_or(0, |d| d.malformed);
    Ok(capture)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table as `Table::parse` would build it, with raw (unencoded) frames so the test
    /// can write them by hand: a u16 index, then the arguments.
    fn table() -> Table {
        let entry = |tag: &str, format: &str| serde_json::json!({ "string": { "tag": tag, "string": format }, "raw_symbol": "test" });
        serde_json::from_value(serde_json::json!({
            "timestamp": null,
            "entries": {
                "0": entry("Info", "cloister starting"),
                "1": entry("Warn", "the answer is {=u8}"),
                "2": entry("Println", "no level"),
            },
            "bitflags": {},
            "encoding": "Raw",
        }))
        .unwrap()
    }

    #[test]
    fn frames_decode_to_levelled_lines_across_reads() {
        let table = table();
        let mut decoder = LogDecoder::new(&table);
        let first = decoder.feed(&[0, 0, 1]);
        assert_eq!(
            first,
            vec![LogLine {
                level: Some(LogLevel::Info),
                timestamp: None,
                text: "cloister starting".into()
            }]
        );
        let rest = decoder.feed(&[0, 42, 2, 0]);
        let shown: Vec<String> = rest.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["[log warn] the answer is 42", "[log] no level"]);
        assert_eq!(decoder.malformed, 0);
    }

    #[test]
    fn a_bad_frame_stops_an_encoding_that_cannot_resynchronise() {
        let table = table();
        let mut decoder = LogDecoder::new(&table);
        assert!(decoder.feed(&[9, 0, 0, 0]).is_empty());
        assert!(decoder.feed(&[0, 0]).is_empty());
        assert_eq!(decoder.malformed, 1);
    }

    #[test]
    fn the_tail_reads_everything_written_before_it_is_told_to_finish() {
        let path =
            std::env::temp_dir().join(format!("cloister-tail-test-{}.defmt", std::process::id()));
        std::fs::write(&path, [0, 0, 1, 0, 7]).unwrap();
        let table = table();
        let finished = AtomicBool::new(true);
        let capture = tail(&path, Some(&table), &finished, false).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(capture.raw, [0, 0, 1, 0, 7]);
        let texts: Vec<&str> = capture.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["cloister starting", "the answer is 7"]);
    }

    #[test]
    fn an_elf_without_a_defmt_section_has_no_table() {
        let own_binary = std::env::current_exe().unwrap();
        assert!(read_table(&own_binary).unwrap().is_none());
    }
}
