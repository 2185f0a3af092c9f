//! The chart: ops/s per workload, one bar per engine, log scale (plotters, SVG backend only).

use std::path::Path;

use crate::engines::R;
use crate::report::Report;

#[cfg(not(feature = "chart"))]
pub fn write_svg(_path: &Path, _rep: &Report<'_>) -> R<()> {
    Err("the chart needs the `chart` feature (on with `peers`): \
         cargo bench --bench compare --features chart -- ..."
        .into())
}

#[cfg(feature = "chart")]
pub fn write_svg(path: &Path, rep: &Report<'_>) -> R<()> {
    use crate::report::{thousands, title};
    use crate::workloads::describe;
    use plotters::prelude::*;

    let engines = &rep.engines;
    let workloads = &rep.workloads;
    let values: Vec<Vec<Option<f64>>> = workloads
        .iter()
        .map(|w| engines.iter().map(|e| rep.ops(e, w)).collect())
        .collect();
    let all: Vec<f64> = values.iter().flatten().flatten().copied().collect();
    if all.is_empty() {
        return Err("no results to chart".into());
    }
    let lo = all.iter().copied().fold(f64::MAX, f64::min);
    let hi = all.iter().copied().fold(0f64, f64::max);
    let x_min = 10f64.powf((lo / 2.0).log10().floor());
    let x_max = 10f64.powf((hi * 1.5).log10().ceil());

    let nw = workloads.len();
    let ne = engines.len().max(1);
    let row = 14 * ne as u32 + 14;
    let height = 110 + row * nw as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    // Workload i occupies y in [nw-1-i - 0.5, nw-1-i + 0.5]: the first workload on top.
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "ops/s, log scale, higher is better ({} keys, median of {} run{})",
                thousands(rep.num()),
                rep.runs(),
                if rep.runs() == 1 { "" } else { "s" }
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .margin_right(40)
        .x_label_area_size(36)
        .y_label_area_size(260)
        .build_cartesian_2d((x_min..x_max).log_scale(), -0.5f64..(nw as f64 - 0.5))?;
    let labels: Vec<String> = workloads.iter().map(|w| describe(w).to_string()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(nw)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < nw {
                labels[nw - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|x| axis_label(*x))
        .x_desc("ops/s")
        .label_style(("sans-serif", 13))
        .draw()?;

    let palette = [
        RGBColor(214, 39, 40),   // Strata: red
        RGBColor(31, 119, 180),  // blue
        RGBColor(44, 160, 44),   // green
        RGBColor(255, 127, 14),  // orange
        RGBColor(148, 103, 189), // purple
        RGBColor(140, 86, 75),   // brown
    ];
    let band = 0.8 / ne as f64;
    for (k, engine) in engines.iter().enumerate() {
        let color = palette[k % palette.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = values
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let v = row[k]?;
                let center = (nw - 1 - i) as f64;
                let top = center + 0.4 - band * k as f64;
                Some(Rectangle::new(
                    [(x_min, top - band * 0.9), (v, top)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(title(engine).to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}

/// 100, 1k, 10k, 100k, 1M, 10M.
#[cfg(feature = "chart")]
fn axis_label(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{}k", x / 1e3)
    } else {
        format!("{x}")
    }
}
