//! The topology as SVG, laid out left to right by the `layout-rs` crate (a pure-Rust
//! implementation of Graphviz's layered layout: rank assignment, crossing reduction, placement),
//! so no external `dot` binary is needed. A legend of the backend colours is appended below
//! the graph.

use std::panic::{AssertUnwindSafe, catch_unwind};

use layout::adt::dag::NodeHandle;
use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::{NodeKind, Topology};
use crate::ReportError;
use crate::live::BackendHealth;
use crate::text::html;

/// Label font size, in px.
const FONT_SIZE: usize = 12;
/// Average width of one label character at [`FONT_SIZE`] in a sans-serif font, in px.
const CHAR_WIDTH: f64 = 7.2;
/// Height of one label line, in px (layout-rs advances one em per line).
const LINE_HEIGHT: f64 = 12.0;
/// Space around a label inside its box, in px.
const BOX_PADDING: f64 = 16.0;
/// Margin kept around the drawing when the canvas is trimmed, in px.
const MARGIN: f64 = 10.0;
/// Height of the legend strip under the graph, in px.
const LEGEND_HEIGHT: f64 = 36.0;
/// Width the legend needs, in px: a narrower graph is widened to it.
const LEGEND_WIDTH: f64 = 760.0;

pub(super) fn render(topology: &Topology) -> Result<String, ReportError> {
    // layout-rs asserts its own invariants; a failed assert there must become an error for
    // this one document, not take down the command that asked for it.
    let body = catch_unwind(AssertUnwindSafe(|| layout_svg(topology))).map_err(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the layout library panicked".to_owned());
        ReportError::Layout(reason)
    })?;
    with_legend(&body)
}

fn layout_svg(topology: &Topology) -> String {
    let orientation = Orientation::LeftToRight;
    let mut graph = VisualGraph::new(orientation);
    let handles: Vec<NodeHandle> = topology
        .nodes
        .iter()
        .map(|node| {
            let shape = ShapeKind::new_box(&node.lines.join("\n"));
            let fill = match node.state {
                Some(state) => state.fill(),
                None => kind_fill(node.kind),
            };
            let rounded = if node.kind == NodeKind::Listener {
                12
            } else {
                3
            };
            let look = StyleAttr::new(
                Color::fast("#333333"),
                1,
                Some(Color::fast(fill)),
                rounded,
                FONT_SIZE,
            );
            let size = box_size(&node.lines);
            graph.add_node(Element::create(shape, look, orientation, size))
        })
        .collect();
    for edge in &topology.edges {
        let (Some(&from), Some(&to)) = (handles.get(edge.from), handles.get(edge.to)) else {
            continue;
        };
        let colour = if edge.warning { "#d62728" } else { "#555555" };
        let look = StyleAttr::new(
            Color::fast(colour),
            if edge.warning { 3 } else { 1 },
            None,
            0,
            FONT_SIZE,
        );
        let arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            LineStyleKind::Normal,
            edge.label.as_deref().unwrap_or(""),
            &look,
            &None,
            &None,
        );
        graph.add_edge(arrow, from, to);
    }
    let mut writer = SVGWriter::new();
    graph.do_it(false, false, false, &mut writer);
    writer.finalize()
}

/// A box that fits its label in a sans-serif font. (layout-rs sizes boxes at one font size per
/// character, which makes every box about twice as wide as its text.)
fn box_size(lines: &[String]) -> Point {
    let widest = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let rows = lines.len().max(1);
    Point::new(
        widest as f64 * CHAR_WIDTH + BOX_PADDING,
        rows as f64 * LINE_HEIGHT + BOX_PADDING,
    )
}

fn kind_fill(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Listener => "#cfe3f7",
        NodeKind::Host => "#eef4fb",
        NodeKind::Route | NodeKind::RouteGroup => "#ffffff",
        NodeKind::Pool => "#fff6c8",
        NodeKind::Backend => BackendHealth::Unknown.fill(),
    }
}

/// The right and bottom edge of the lowest and rightmost `<rect>` drawn.
fn drawn_extent(svg: &str) -> Option<(f64, f64)> {
    let mut extent: Option<(f64, f64)> = None;
    for rect in svg.split("<rect ").skip(1) {
        let rect = format!(" {}", rect.split('>').next().unwrap_or(""));
        let attr = |name: &str| -> Option<f64> {
            let at = rect.find(&format!(" {name}=\""))? + name.len() + 3;
            rect[at..].split('"').next()?.trim().parse().ok()
        };
        let (Some(x), Some(y), Some(w), Some(h)) =
            (attr("x"), attr("y"), attr("width"), attr("height"))
        else {
            continue;
        };
        let (right, bottom) = extent.unwrap_or((0.0, 0.0));
        extent = Some((right.max(x + w), bottom.max(y + h)));
    }
    extent
}

/// Grows the SVG by a strip at the bottom and draws the colour legend in it.
fn with_legend(svg: &str) -> Result<String, ReportError> {
    let malformed =
        || ReportError::Layout("unexpected SVG header from the layout library".to_owned());
    let start = svg.find("<svg ").ok_or_else(malformed)?;
    let header_end = start + svg[start..].find('>').ok_or_else(malformed)?;
    let header = &svg[start..header_end];
    let number = |name: &str| -> Option<f64> {
        let at = header.find(&format!("{name}=\""))? + name.len() + 2;
        header[at..].split('"').next()?.parse().ok()
    };
    let (width, height) = number("width")
        .zip(number("height"))
        .ok_or_else(malformed)?;
    // layout-rs grows its canvas by ten pixels per character of every label, downwards; the
    // boxes tell the real extent.
    let (width, height) = drawn_extent(svg).map_or((width, height), |(w, h)| {
        (w.min(width) + MARGIN, h.min(height) + MARGIN)
    });
    let width = width.max(LEGEND_WIDTH);
    let new_height = height + LEGEND_HEIGHT;
    let new_header = format!(
        "<svg width=\"{width}\" height=\"{new_height}\" viewBox=\"0 0 {width} {new_height}\" xmlns=\"http://www.w3.org/2000/svg\""
    );
    let mut legend = format!(
        "<g class=\"legend\" font-family=\"sans-serif\"><rect x=\"0\" y=\"{height}\" width=\"{width}\" height=\"{LEGEND_HEIGHT}\" fill=\"#ffffff\"/>"
    );
    let y = height + 10.0;
    let mut x = 20.0;
    let legend_items = [
        (BackendHealth::Healthy, "healthy"),
        (BackendHealth::Unhealthy, "unhealthy / ejected"),
        (BackendHealth::Misidentified, "misidentified"),
        (BackendHealth::Unknown, "unknown"),
    ];
    for (state, text) in legend_items {
        legend.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"16\" height=\"16\" fill=\"{}\" stroke=\"#333333\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            state.fill(),
            x + 22.0,
            y + 12.0,
            html(text)
        ));
        x += 40.0 + 7.0 * text.len() as f64;
    }
    legend.push_str(&format!(
        "<line x1=\"{x}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#d62728\" stroke-width=\"3\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"12\">route to a pool of another service</text></g>",
        y + 8.0,
        x + 24.0,
        y + 8.0,
        x + 30.0,
        y + 12.0
    ));
    let close = svg.rfind("</svg>").ok_or_else(malformed)?;
    let body =
        svg[header_end..close].replace("font-family: Times, serif", "font-family: sans-serif");
    Ok(format!(
        "{}{new_header}{body}{legend}</svg>\n",
        &svg[..start]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_comes_from_the_boxes() {
        let svg = "<svg width=\"900\" height=\"900\"><g>\n<rect x=\"30\" y=\"171\" width=\"178\" height=\"34\" fill=\"#fff\" \n stroke=\"#000\" /></g><rect x=\"1\" y=\"2\" width=\"3\" height=\"4\"/></svg>";
        assert_eq!(drawn_extent(svg), Some((208.0, 205.0)));
        let out = with_legend(svg).unwrap_or_default();
        assert!(
            out.contains(&format!("height=\"{}\"", 205.0 + MARGIN + LEGEND_HEIGHT)),
            "{out}"
        );
    }
}
