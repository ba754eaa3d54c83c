//! The HTML report of `reproduce` (results/reproduce/index.html): its tables (the
//! markdown of tables.md, converted), every figure by relative path (PNG, linking the SVG),
//! the paper's claimed bands, and the machine, commit and time each part took. One
//! self-contained folder with tables.md, the CSVs and figures/; no scripts, no network.

use std::fmt::Write;

/// What the report shows besides the tables.
pub struct Report<'a> {
    pub title: &'a str,
    /// tables.md
    pub markdown: &'a str,
    /// figure stems relative to the report folder (`figures/pe-power`): PNG and SVG exist
    pub figures: Vec<String>,
    /// the paper's claims, one line each
    pub claims: Vec<String>,
    /// (what, value): machine, commit, generated, time per part
    pub meta: Vec<(String, String)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline `code` spans and `**bold**` of our markdown.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (k, part) in esc(s).split('`').enumerate() {
        if k % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<strong>{p}</strong>");
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

fn cells(line: &str) -> Vec<&str> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(str::trim).collect()
}

/// The subset of markdown that tables.md uses: `#` headings, pipe tables, paragraphs.
pub fn markdown_to_html(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, out: &mut String| {
        if !para.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", inline(&para.join(" ")));
            para.clear();
        }
    };
    while i < lines.len() {
        let l = lines[i];
        let level = l.chars().take_while(|&c| c == '#').count();
        if (1..=4).contains(&level) && l[level..].starts_with(' ') {
            flush(&mut para, &mut out);
            let h = level + 1; // h1 is the page title
            let _ = writeln!(out, "<h{h}>{}</h{h}>", inline(l[level..].trim()));
        } else if l.trim_start().starts_with('|') {
            flush(&mut para, &mut out);
            let head = cells(l);
            let _ = write!(out, "<table>\n<thead><tr>");
            for c in &head {
                let _ = write!(out, "<th>{}</th>", inline(c));
            }
            let _ = writeln!(out, "</tr></thead>\n<tbody>");
            i += 1;
            if i < lines.len() && lines[i].contains("---") {
                i += 1;
            }
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                let _ = write!(out, "<tr>");
                for c in cells(lines[i]) {
                    let _ = write!(out, "<td>{}</td>", inline(c));
                }
                let _ = writeln!(out, "</tr>");
                i += 1;
            }
            let _ = writeln!(out, "</tbody></table>");
            continue;
        } else if l.trim().is_empty() {
            flush(&mut para, &mut out);
        } else {
            para.push(l.trim());
        }
        i += 1;
    }
    flush(&mut para, &mut out);
    out
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1200px;\
margin:2em auto;padding:0 1em;color:#111;line-height:1.45}\
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}\
th,td{border:1px solid #bbb;padding:0.25em 0.55em;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#eee}\
figure{display:inline-block;margin:0.6em;vertical-align:top;width:560px}\
figure img{width:100%;border:1px solid #ddd}figcaption{font-size:0.85em;color:#444}\
.meta td{text-align:left}.claims{background:#f6f6f0;border:1px solid #cc9;padding:0.5em 1em}\
code{background:#f2f2f2;padding:0 0.2em}";

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>",
        esc(r.title),
        esc(r.title)
    );
    let _ = writeln!(h, "<table class=\"meta\"><tbody>");
    for (k, v) in &r.meta {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    let _ = writeln!(h, "</tbody></table>");
    let _ = writeln!(h, "<div class=\"claims\"><h2>The paper's claims</h2><ul>");
    for c in &r.claims {
        let _ = writeln!(h, "<li>{}</li>", inline(c));
    }
    let _ = writeln!(h, "</ul></div>");
    let _ = writeln!(h, "<h2>Figures</h2>");
    for f in &r.figures {
        let name = f.rsplit('/').next().unwrap_or(f);
        let _ = writeln!(
            h,
            "<figure><a href=\"{f}.svg\"><img src=\"{f}.png\" alt=\"{name}\"></a><figcaption>{name} (<a href=\"{f}.svg\">SVG</a>)</figcaption></figure>",
            f = esc(f),
            name = esc(name)
        );
    }
    h += &markdown_to_html(r.markdown);
    let _ = writeln!(
        h,
        "<p>Files: <a href=\"tables.md\">tables.md</a>, <a href=\"accuracy.csv\">accuracy.csv</a>, <a href=\"hw.csv\">hw.csv</a>, <a href=\"dataflow.csv\">dataflow.csv</a>, <a href=\"accuracy/runs.csv\">accuracy/runs.csv</a> (schemas: docs/csv-schemas.md).</p>\n</body>\n</html>"
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_headings_and_escapes() {
        let md = "# T\n\nsome `x<y` and **b**\n\n| a | b |\n|---|---|\n| 1 | <2> |\n";
        let h = markdown_to_html(md);
        assert!(h.contains("<h2>T</h2>"), "{h}");
        assert!(h.contains("<code>x&lt;y</code>"), "{h}");
        assert!(h.contains("<strong>b</strong>"), "{h}");
        assert!(h.contains("<th>a</th><th>b</th>"), "{h}");
        assert!(h.contains("<td>1</td><td>&lt;2&gt;</td>"), "{h}");
        assert!(!h.contains("---"), "{h}");
    }
}
