//! `--plot FILE.png`: launch instructions against private memory size, demand pinning
//! against upfront. Drawn by plotters into an RGB buffer and encoded by `png`; the text
//! uses DejaVu Sans compiled in (the `dejavu` crate), so no system font is needed.

use super::suite::{MemorySize, Pinning};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;
const FONT: &str = "sans-serif";

/// Draw the launch figures (any subset) and write them to `path` as a PNG.
pub fn write_png(path: &Path, launch: &BTreeMap<(MemorySize, Pinning), u64>) -> Result<(), String> {
    let pixels = render(launch)?;
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

/// The chart as RGB pixels, row by row.
fn render(launch: &BTreeMap<(MemorySize, Pinning), u64>) -> Result<Vec<u8>, String> {
    plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the built-in font does not load".to_owned())?;
    let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw(&mut pixels, launch).map_err(|e| e.to_string())?;
    Ok(pixels)
}

fn draw(
    pixels: &mut [u8],
    launch: &BTreeMap<(MemorySize, Pinning), u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (low, high) = value_range(launch);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Launch cost: instructions from hypervisor entry to workload start",
            (FONT, 20),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(
            (40f64..3300f64)
                .log_scale()
                .with_key_points(vec![64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0]),
            (low..high).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("private memory (MiB, log scale)")
        .y_desc("instructions (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| si(*v))
        .label_style((FONT, 14))
        .draw()?;
    for (pinning, color) in [(Pinning::Demand, BLUE), (Pinning::Upfront, RED)] {
        let points: Vec<(f64, f64)> = MemorySize::ALL
            .into_iter()
            .filter_map(|size| {
                let value = *launch.get(&(size, pinning))?;
                Some((size.mib() as f64, value as f64))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(format!("pinning = {}", pinning.as_str()))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&(x, y)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 4, color.filled())
                + Text::new(si(y), (6, -18), (FONT, 13))
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A log axis from a bit under the smallest value to a bit over the largest.
fn value_range(launch: &BTreeMap<(MemorySize, Pinning), u64>) -> (f64, f64) {
    let values = launch.values().map(|&v| v.max(1) as f64);
    let low = values.clone().fold(f64::INFINITY, f64::min);
    let high = values.fold(0.0, f64::max);
    if launch.is_empty() {
        (1.0, 10.0)
    } else {
        (low / 3.0, high * 3.0)
    }
}

/// `1.23M`, `45.6k`, `2.00G`: three significant digits.
fn si(value: f64) -> String {
    let (scaled, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|&(unit, _)| value >= unit)
        .map_or((value, ""), |(unit, suffix)| (value / unit, suffix));
    let decimals = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.decimals$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_keeps_three_significant_digits() {
        assert_eq!(si(1_000_640.0), "1.00M");
        assert_eq!(si(1_106_920_000.0), "1.11G");
        assert_eq!(si(45_600.0), "45.6k");
        assert_eq!(si(512.0), "512");
        assert_eq!(si(7.0), "7.00");
    }

    #[test]
    fn writes_a_png_of_the_chart_size() {
        let mut launch = BTreeMap::new();
        for size in MemorySize::ALL {
            launch.insert((size, Pinning::Demand), 1_000_000 + size.mib());
            launch.insert((size, Pinning::Upfront), 1_000_000 + size.mib() * 540_000);
        }
        let path = std::env::temp_dir().join(format!("cloister-plot-{}.png", std::process::id()));
        write_png(&path, &launch).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after the chunk's length and type.
        assert_eq!(bytes[16..20], WIDTH.to_be_bytes());
        assert_eq!(bytes[20..24], HEIGHT.to_be_bytes());
    }

    #[test]
    fn a_partial_or_empty_chart_still_draws() {
        let mut launch = BTreeMap::new();
        assert!(render(&launch).is_ok());
        launch.insert((MemorySize::M64, Pinning::Demand), 1_000_000);
        let pixels = render(&launch).unwrap();
        // Not all white: axes, text and the point were drawn.
        assert!(pixels.iter().any(|&b| b != 255));
    }
}
