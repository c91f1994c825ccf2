//! The headline as plain text, for terminals.

use std::fmt;

use super::model::{Figure, Headline};

/// Width the summary's sentences are wrapped to.
const WRAP: usize = 100;

impl fmt::Display for Headline {
    /// A table of metric, before, after and change in aligned columns, then the summary
    /// wrapped to 100 columns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |figure: &Option<Figure>| {
            figure
                .as_ref()
                .map_or_else(|| "—".to_owned(), |f| f.text.clone())
        };
        let mut header = vec!["metric".to_owned(), self.before.label.clone()];
        if let Some(after) = &self.after {
            header.push(after.label.clone());
            header.push("change".to_owned());
        }
        let mut table = vec![header];
        for row in &self.rows {
            let mut line = vec![row.label.clone(), text(&row.before)];
            if self.after.is_some() {
                line.push(text(&row.after));
                line.push(
                    row.change
                        .as_ref()
                        .map_or_else(|| "—".to_owned(), |c| c.text.clone()),
                );
            }
            table.push(line);
        }
        let columns = table[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                table
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &table {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 < columns {
                    let pad = widths[c] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 3));
                } else {
                    line.push_str(cell);
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        if !self.summary.is_empty() {
            writeln!(f)?;
            for line in wrap(&self.summary.join(" "), WRAP) {
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    }
}

/// `text` broken into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces() {
        assert_eq!(wrap("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(wrap("", 5), Vec::<String>::new());
    }
}
