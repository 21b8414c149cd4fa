//! SVG plots of the benchmark CSVs: `failover.svg` (latency and errors over
//! time, one panel per system) and `steady.svg` (throughput bars).

use plotters::prelude::*;
use std::fs;
use std::path::Path;

const SYSTEMS: [&str; 3] = ["failgroup-client", "failgroup-resp", "twemproxy"];
const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

fn read_csv(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.lines().skip(1).filter(|l| !l.is_empty()).map(|l| l.split(',').map(str::to_string).collect()).collect())
}

fn num(row: &[String], i: usize, path: &Path) -> Result<f64, String> {
    row.get(i).and_then(|v| v.trim().parse().ok()).ok_or_else(|| format!("{}: bad row {row:?}", path.display()))
}

pub fn draw(out: &Path) -> Result<(), String> {
    let mut drew = 0;
    if SYSTEMS.iter().any(|s| out.join(format!("failover-{s}.csv")).exists()) {
        failover(out)?;
        drew += 1;
    }
    if out.join("steady.csv").exists() {
        steady(out)?;
        drew += 1;
    }
    if drew == 0 {
        return Err(format!("{}: no failover-*.csv or steady.csv to plot (run bench/all.sh)", out.display()));
    }
    Ok(())
}

/// Per 100 ms: t (s), p50, p99.9, errors + misses, operations completed.
type Series = Vec<(f64, f64, f64, f64, f64)>;

/// Runs of consecutive windows in which something completed: a window with
/// no completion has no latency, so the lines break there.
fn runs(series: &Series) -> Vec<Vec<(f64, f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new()];
    for p in series {
        if p.4 > 0.0 {
            out.last_mut().expect("never empty").push((p.0, p.1, p.2));
        } else if !out.last().expect("never empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out
}

fn failover(out: &Path) -> Result<(), String> {
    let mut systems: Vec<(&str, Series)> = Vec::new();
    for s in SYSTEMS {
        let path = out.join(format!("failover-{s}.csv"));
        if !path.exists() {
            continue;
        }
        let mut series = Vec::new();
        for row in read_csv(&path)? {
            let t = num(&row, 0, &path)? / 1000.0;
            let bad = num(&row, 5, &path)? + num(&row, 6, &path)?;
            series.push((t, num(&row, 2, &path)?.max(0.01), num(&row, 4, &path)?.max(0.01), bad, num(&row, 1, &path)?));
        }
        systems.push((s, series));
    }
    let path = out.join("failover.svg");
    let root = SVGBackend::new(&path, (1000, 300 * systems.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((systems.len(), 1));
    for ((name, series), area) in systems.iter().zip(panels) {
        let t_max = series.last().map_or(1.0, |p| p.0 + 0.1);
        let bad_max = series.iter().map(|p| p.3).fold(10.0, f64::max);
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{name}: latency per 100 ms by completion (log; a gap: nothing completed) and errors + misses"),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .right_y_label_area_size(55)
            .build_cartesian_2d(0.0..t_max, (0.01f64..20_000.0).log_scale())
            .map_err(|e| e.to_string())?
            .set_secondary_coord(0.0..t_max, 0.0..bad_max * 1.1);
        chart.configure_mesh().x_desc("seconds").y_desc("latency ms").draw().map_err(|e| e.to_string())?;
        chart.configure_secondary_axes().y_desc("errors + misses / 100 ms").draw().map_err(|e| e.to_string())?;
        chart
            .draw_secondary_series(
                series
                    .iter()
                    .filter(|p| p.3 > 0.0)
                    .map(|p| Rectangle::new([(p.0, 0.0), (p.0 + 0.09, p.3)], COLORS[3].mix(0.5).filled())),
            )
            .map_err(|e| e.to_string())?
            .label("errors + misses")
            .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], COLORS[3].mix(0.5).filled()));
        for (i, (label, color)) in [("p50", COLORS[0]), ("p99.9", COLORS[1])].into_iter().enumerate() {
            for (n, run) in runs(series).iter().enumerate() {
                let line = run.iter().map(|p| (p.0, if i == 0 { p.1 } else { p.2 }));
                let drawn = chart.draw_series(LineSeries::new(line, color)).map_err(|e| e.to_string())?;
                if n == 0 {
                    drawn.label(label).legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], color));
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    println!("wrote {}", path.display());
    Ok(())
}

fn steady(out: &Path) -> Result<(), String> {
    let path = out.join("steady.csv");
    // system,test,P,ops_per_s,p50_ms,p99_ms
    let rows = read_csv(&path)?;
    let mut systems: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for r in &rows {
        let (Some(s), Some(t), Some(p)) = (r.first(), r.get(1), r.get(2)) else {
            return Err(format!("{}: bad row {r:?}", path.display()));
        };
        if !systems.contains(s) {
            systems.push(s.clone());
        }
        let g = format!("{t} -P {p}");
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut max = 1.0f64;
    let mut bars = Vec::new();
    for r in &rows {
        let g = groups.iter().position(|g| *g == format!("{} -P {}", r[1], r[2])).unwrap_or(0);
        let s = systems.iter().position(|s| *s == r[0]).unwrap_or(0);
        let ops = num(r, 3, &path)? / 1000.0;
        max = max.max(ops);
        let x = g as f64 + 0.1 + s as f64 * 0.8 / systems.len() as f64;
        bars.push((x, x + 0.8 / systems.len() as f64 * 0.9, ops, s));
    }
    let svg = out.join("steady.svg");
    let root = SVGBackend::new(&svg, (1000, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("steady state: thousands of ops/s (redis-benchmark -c 50 -r 100000)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..groups.len() as f64, 0.0..max * 1.15)
        .map_err(|e| e.to_string())?;
    let labels = groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("k ops/s")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, name) in systems.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                bars.iter().filter(|b| b.3 == i).map(|b| Rectangle::new([(b.0, 0.0), (b.1, b.2)], color.filled())),
            )
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    println!("wrote {}", svg.display());
    Ok(())
}
