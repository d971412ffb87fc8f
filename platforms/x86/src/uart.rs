//! A polled 16550 UART (no interrupts, no FIFO waits beyond the transmit holding
//! register), implementing embedded-io's traits.

use core::convert::Infallible;
use x86::io::{inb, outb};

const DATA: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const FIFO_CONTROL: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;

const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LCR_DLAB: u8 = 1 << 7;
const LCR_8N1: u8 = 0x03;

pub struct Uart16550 {
    base: u16,
}

impl Uart16550 {
    /// Program the UART at I/O port `base` for 115200 8N1, polled.
    pub fn new(base: u16) -> Self {
        let uart = Self { base };
        uart.out(INTERRUPT_ENABLE, 0);
        uart.out(LINE_CONTROL, LCR_DLAB);
        uart.out(DATA, 1); // divisor 1: 115200 baud
        uart.out(INTERRUPT_ENABLE, 0);
        uart.out(LINE_CONTROL, LCR_8N1);
        uart.out(FIFO_CONTROL, 0x07); // enable and clear FIFOs
        uart.out(MODEM_CONTROL, 0x03); // DTR | RTS
        uart
    }

    /// A handle on an already programmed UART, for crash paths that must not take a lock.
    pub const fn attach(base: u16) -> Self {
        Self { base }
    }

    fn out(&self, reg: u16, value: u8) {
        // SAFETY: port I/O on the UART's own registers has no memory effects.
        unsafe { outb(self.base + reg, value) }
    }

    fn status(&self) -> u8 {
        // SAFETY: reading the line status register has no side effects.
        unsafe { inb(self.base + LINE_STATUS) }
    }

    pub fn write_byte(&mut self, byte: u8) {
        while self.status() & LSR_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        self.out(DATA, byte);
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }
}

impl embedded_io::ErrorType for Uart16550 {
    type Error = Infallible;
}

impl embedded_io::Write for Uart16550 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        // Blocks for the first byte so a non-empty write never returns Ok(0).
        let Some((&first, rest)) = buf.split_first() else {
            return Ok(0);
        };
        self.write_byte(first);
        let mut written = 1;
        for &b in rest {
            if self.status() & LSR_THR_EMPTY == 0 {
                break;
            }
            self.out(DATA, b);
            written += 1;
        }
        Ok(written)
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.status() & LSR_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        Ok(())
    }
}

impl embedded_io::WriteReady for Uart16550 {
    fn write_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.status() & LSR_THR_EMPTY != 0)
    }
}

impl embedded_io::ReadReady for Uart16550 {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.status() & LSR_DATA_READY != 0)
    }
}

impl embedded_io::Read for Uart16550 {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.status() & LSR_DATA_READY == 0 {
            core::hint::spin_loop();
        }
        let mut read = 0;
        while read < buf.len() && self.status() & LSR_DATA_READY != 0 {
            // SAFETY: reading the data register pops one received byte.
            buf[read] = unsafe { inb(self.base + DATA) };
            read += 1;
        }
        Ok(read)
    }
}

impl core::fmt::Write for Uart16550 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
