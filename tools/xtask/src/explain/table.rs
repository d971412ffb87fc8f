//! Plain-text tables with aligned columns, for terminals and for `grep`: one row a
//! line, columns two spaces apart, no borders.

use std::fmt::Write;

/// Which side of its column a cell's text sits on; sizes line up on the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Add a row; it must have a cell for every column.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// The header and the rows, each line starting with `indent` spaces and ending
    /// without trailing spaces.
    pub fn render(&self, indent: usize) -> String {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                let cells = self.rows.iter().map(|row| row[i].chars().count());
                cells.chain([self.columns[i].0.len()]).max().unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        let mut out = String::new();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = " ".repeat(indent);
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let width = widths[i];
                let _ = match self.columns[i].1 {
                    Align::Left => write!(line, "{cell:<width$}"),
                    Align::Right => write!(line, "{cell:>width$}"),
                };
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `name  value` lines with the values lined up, for settings.
pub fn fields(indent: usize, pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in pairs {
        let line = format!("{:indent$}{name:<width$}  {value}", "");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_sizes_align_right() {
        let mut table = Table::new(&[
            ("range", Align::Left),
            ("size", Align::Right),
            ("use", Align::Left),
        ]);
        table.row(vec![
            "[0x0, 0x2000000)".into(),
            "32M".into(),
            "hypervisor".into(),
        ]);
        table.row(vec![
            "[0x2000000, 0x6000000)".into(),
            "64M".into(),
            String::new(),
        ]);
        assert_eq!(
            table.render(2),
            "  range                   size  use\n\
             \x20 [0x0, 0x2000000)         32M  hypervisor\n\
             \x20 [0x2000000, 0x6000000)   64M\n"
        );
    }

    #[test]
    fn field_values_line_up() {
        let pairs = [
            ("board", "qemu-x86_64".to_owned()),
            ("log level", "info".to_owned()),
        ];
        assert_eq!(
            fields(2, &pairs),
            "  board      qemu-x86_64\n  log level  info\n"
        );
    }

    #[test]
    #[should_panic(expected = "one cell per column")]
    fn a_row_with_a_missing_cell_is_a_bug() {
        Table::new(&[("a", Align::Left), ("b", Align::Left)]).row(vec!["x".into()]);
    }
}
