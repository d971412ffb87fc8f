//! The workload image: where it comes from and, when it exists without a build, what
//! it loads where and whether it fits the configuration.

use super::span;
use super::table::{Align, Table, fields};
use super::workload_image::{PresentImage, WorkloadImage};
use cloister_config::{Config, ImageSource, Size};
use std::path::Path;

pub fn section(config_path: &Path, config: &Config, image: &WorkloadImage) -> String {
    let mut pairs = vec![("source", source(config))];
    let mut details = String::new();
    match image {
        WorkloadImage::Absent { path } => {
            pairs.push(("file", path.display().to_string()));
            let state = match config.workload.image_source() {
                ImageSource::Package { .. } => format!(
                    "not built yet (run cargo xtask build --config {})",
                    config_path.display()
                ),
                ImageSource::File(_) => "missing: no such file".to_owned(),
            };
            pairs.push(("state", state));
        }
        WorkloadImage::Present(present) => {
            pairs.extend(present_fields(config, present));
            details = segments(present);
            for problem in &present.problems {
                details.push_str(&format!("\nerror: {problem}\n"));
            }
        }
    }
    format!("Workload image\n{}{details}", fields(2, &pairs))
}

/// What `workload.image` means.
fn source(config: &Config) -> String {
    let image = &config.workload.image;
    match config.workload.image_source() {
        ImageSource::Package { package, bin } => {
            format!("{image:?}: binary {bin} of workspace package {package}")
        }
        ImageSource::File(_) => format!("{image:?}: a file, relative to the configuration"),
    }
}

fn present_fields(config: &Config, image: &PresentImage) -> Vec<(&'static str, String)> {
    let state = match config.workload.image_source() {
        // Whatever the last build left; a build may change it.
        ImageSource::Package { .. } => "built (as last built; cargo xtask build rebuilds it)",
        ImageSource::File(_) => "present",
    };
    let check = match image.problems.len() {
        0 => "ok: loads into this configuration's private memory".to_owned(),
        n => format!("{n} problem{} (below)", if n == 1 { "" } else { "s" }),
    };
    vec![
        ("file", image.path.display().to_string()),
        ("state", state.to_owned()),
        ("size", format!("{} bytes", image.bytes)),
        (
            "entry",
            image
                .entry
                .map_or("-".to_owned(), |entry| format!("{entry:#x}")),
        ),
        ("check", check),
    ]
}

fn segments(image: &PresentImage) -> String {
    if image.segments.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&[
        ("PT_LOAD at", Align::Left),
        ("in file", Align::Right),
        ("in memory", Align::Right),
    ]);
    for segment in &image.segments {
        table.row(vec![
            span(segment.gpa, segment.mem_size),
            Size(segment.file_size).to_string(),
            Size(segment.mem_size).to_string(),
        ]);
    }
    format!("\n{}", table.render(2))
}
