//! Page text from glyph positions, the way poppler's `pdftotext` reads a
//! page: every glyph the content stream draws is placed on the page with
//! its advance and size; glyphs on one baseline make a line, read in the
//! direction the text runs (any of the four right angles); a gap wider than
//! a tenth of the font size between two glyphs is a word break, whatever
//! the producer's kerning; lines far apart start a new paragraph; a word
//! hyphenated across a line end is joined; ligature glyphs become letters.
//!
//! pdf-extract's own plain-text writer decides spaces from each string's
//! first glyph alone, so a producer that places every few glyphs with its
//! own positioning (Google Docs) came out as "Exa mp le do cumen t".

use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

/// A gap wider than this share of the font size is a word break (poppler's
/// `minWordBreakSpace`).
const WORD_BREAK: f64 = 0.1;
/// A baseline that moves more than this share of the font size starts a new
/// line; within it, sub- and superscripts stay on their line.
const SAME_LINE: f64 = 0.5;
/// Lines further apart than this many font sizes are separate paragraphs.
const PARAGRAPH_GAP: f64 = 1.6;

/// One glyph in the frame of its text direction: `u` runs along the text,
/// `v` down across it (the baseline's position).
#[derive(Debug, Clone)]
struct Glyph {
    rotation: u8,
    u0: f64,
    u1: f64,
    v: f64,
    size: f64,
    text: String,
}

#[derive(Debug, Default)]
struct Line {
    glyphs: Vec<Glyph>,
}

impl Line {
    fn last(&self) -> &Glyph {
        self.glyphs.last().expect("a line holds a glyph")
    }

    fn size(&self) -> f64 {
        self.glyphs.iter().map(|g| g.size).fold(0.0, f64::max)
    }

    /// The baseline of the line's largest glyphs (not of a superscript).
    fn v(&self) -> f64 {
        let size = self.size();
        self.glyphs
            .iter()
            .find(|g| g.size >= size * 0.9)
            .map_or(0.0, |g| g.v)
    }

    /// Whether `glyph` continues this line: same direction, same baseline
    /// (within half a font size), and not a jump back to the line's start.
    fn continues_with(&self, glyph: &Glyph) -> bool {
        let last = self.last();
        let size = glyph.size.max(last.size).max(1e-6);
        glyph.rotation == last.rotation
            && (glyph.v - last.v).abs() <= SAME_LINE * size
            && glyph.u0 >= last.u1 - 2.0 * size
    }

    fn text(&self) -> String {
        let mut glyphs: Vec<&Glyph> = self.glyphs.iter().collect();
        // Content order is reading order for nearly every producer; the
        // stable sort only mends glyphs drawn out of place.
        glyphs.sort_by(|a, b| a.u0.total_cmp(&b.u0));
        let mut out = String::new();
        let mut end: Option<f64> = None;
        for glyph in glyphs {
            if glyph.text.trim().is_empty() {
                // An explicit space: a break, whatever its width.
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
                end = Some(glyph.u1);
                continue;
            }
            if let Some(end) = end {
                if glyph.u0 - end > WORD_BREAK * glyph.size && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            push_glyph(&mut out, &glyph.text);
            end = Some(end.map_or(glyph.u1, |e: f64| e.max(glyph.u1)));
        }
        out.trim_end().to_owned()
    }
}

/// Appends a glyph's text, ligatures spelled out so that "ﬁlled" is found
/// by a search for "filled".
fn push_glyph(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\0' => {}
            c => out.push(c),
        }
    }
}

/// Collects a page's glyphs from pdf-extract's interpreter and lays them
/// out as text when the page ends.
#[derive(Default)]
pub(super) struct PageText {
    height: f64,
    glyphs: Vec<Glyph>,
    text: String,
}

impl PageText {
    /// The page's text: what was laid out when it ended, or, when the
    /// interpreter stopped partway (a damaged stream, a parser crash), the
    /// glyphs it drew until then.
    pub(super) fn finish(mut self) -> String {
        if !self.glyphs.is_empty() {
            self.lay_out();
        }
        self.text
    }

    fn lay_out(&mut self) {
        let mut lines: Vec<Line> = Vec::new();
        for glyph in self.glyphs.drain(..) {
            match lines.last_mut() {
                Some(line) if line.continues_with(&glyph) => line.glyphs.push(glyph),
                _ => lines.push(Line {
                    glyphs: vec![glyph],
                }),
            }
        }
        let mut out = String::new();
        let mut previous: Option<(u8, f64, f64)> = None;
        for line in &lines {
            let text = line.text();
            if text.is_empty() {
                continue;
            }
            let (rotation, v, size) = (line.last().rotation, line.v(), line.size());
            if let Some((prev_rotation, prev_v, prev_size)) = previous {
                let gap = v - prev_v;
                let paragraph = rotation != prev_rotation
                    || gap < 0.0
                    || gap > PARAGRAPH_GAP * size.max(prev_size);
                if paragraph {
                    out.push_str("\n\n");
                } else if !join_hyphenated(&mut out, &text) {
                    out.push('\n');
                }
            }
            out.push_str(&text);
            previous = Some((rotation, v, size));
        }
        self.text = out;
    }
}

/// A line that ends in a letter and a hyphen, followed by one that starts
/// with a lowercase letter, is one word cut in two: drops the hyphen so the
/// halves join (as pdftotext does). Returns whether it did.
fn join_hyphenated(out: &mut String, next: &str) -> bool {
    let mut tail = out.chars().rev();
    let hyphen = matches!(tail.next(), Some('-' | '\u{2010}' | '\u{00AD}'));
    let letter_before = tail.next().is_some_and(char::is_alphabetic);
    let lower_after = next.chars().next().is_some_and(char::is_lowercase);
    if hyphen && letter_before && lower_after {
        out.pop();
        true
    } else {
        false
    }
}

impl OutputDev for PageText {
    fn begin_page(
        &mut self,
        _page: u32,
        media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.height = media_box.ury - media_box.lly;
        self.glyphs.clear();
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        self.lay_out();
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        text: &str,
    ) -> Result<(), OutputError> {
        // The page with y running down: (x, y) -> (x, height - y).
        let (x, y) = (trm.m31, self.height - trm.m32);
        let advance = (width * font_size * trm.m11, -width * font_size * trm.m12);
        let up = (font_size * trm.m21, -font_size * trm.m22);
        let size = up.0.hypot(up.1);
        if !size.is_finite() || size <= 0.0 || !x.is_finite() || !y.is_finite() {
            return Ok(());
        }
        // The direction text runs, from the glyph's advance (or, for a
        // zero-width glyph, from its x axis), to the nearest right angle.
        let along = if advance.0.hypot(advance.1) > 1e-9 {
            advance
        } else {
            (trm.m11, -trm.m12)
        };
        let rotation = if along.0.abs() >= along.1.abs() {
            if along.0 >= 0.0 {
                0
            } else {
                2
            }
        } else if along.1 >= 0.0 {
            1
        } else {
            3
        };
        let (u, v) = match rotation {
            0 => (x, y),
            1 => (y, -x),
            2 => (-x, -y),
            _ => (-y, x),
        };
        let length = advance.0.hypot(advance.1);
        self.glyphs.push(Glyph {
            rotation,
            u0: u,
            u1: u + length,
            v,
            size,
            text: text.to_owned(),
        });
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(u0: f64, v: f64, text: &str) -> Glyph {
        Glyph {
            rotation: 0,
            u0,
            u1: u0 + 5.0 * text.chars().count() as f64,
            v,
            size: 10.0,
            text: text.to_owned(),
        }
    }

    fn page(glyphs: Vec<Glyph>) -> String {
        let page = PageText {
            glyphs,
            ..PageText::default()
        };
        page.finish()
    }

    #[test]
    fn kerned_runs_join_into_words_and_gaps_break_them() {
        // "Exa" "mp" "le" placed as separate runs, touching: one word.
        let text = page(vec![
            glyph(0.0, 100.0, "Exa"),
            glyph(15.0, 100.0, "mp"),
            glyph(25.2, 100.0, "le"),
            glyph(38.0, 100.0, "do"),
        ]);
        assert_eq!(text, "Example do");
    }

    #[test]
    fn hyphenated_words_join_and_paragraphs_separate() {
        let text = page(vec![
            glyph(0.0, 100.0, "adip-"),
            glyph(0.0, 112.0, "iscing"),
            glyph(40.0, 112.0, "elit"),
            glyph(0.0, 124.0, "Well-"),
            glyph(0.0, 136.0, "Known"),
            glyph(0.0, 180.0, "Next"),
        ]);
        assert_eq!(text, "adipiscing elit\nWell-\nKnown\n\nNext");
    }

    #[test]
    fn superscripts_stay_on_their_line_and_ligatures_spell_out() {
        let mut sup = glyph(20.0, 96.0, "2");
        sup.size = 6.0;
        let text = page(vec![
            glyph(0.0, 100.0, "x"),
            sup,
            glyph(30.0, 100.0, "\u{FB01}ne"),
        ]);
        assert_eq!(text, "x 2 fine");
    }
}
