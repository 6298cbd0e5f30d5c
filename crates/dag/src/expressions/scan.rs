//! Finding `<< EXPR >>` in a string: one left-to-right pass that splits it into literal text and
//! expressions. `\<<` is a literal `<<`; a `>>` inside a quoted string literal does not close the
//! expression; `{{ ... }}` is ordinary text.

/// A part of a scanned string.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Piece<'s> {
    /// Literal text, copied as is.
    Text(&'s str),
    /// An expression, trimmed; `offset` is the byte offset of its `<<`.
    Expression { text: &'s str, offset: usize },
}

/// A string whose `<<` cannot be read as an expression.
#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) struct ScanError<'s> {
    /// Byte offset of the `<<`.
    pub(crate) offset: usize,
    /// What follows the `<<` (trimmed), for the message.
    pub(crate) text: &'s str,
    pub(crate) reason: &'static str,
}

/// 1-based character column of a byte offset.
pub(crate) fn column(s: &str, offset: usize) -> usize {
    s.get(..offset).map_or(0, |prefix| prefix.chars().count()) + 1
}

/// Splits `s` into pieces, calling `piece` for each in order.
pub(crate) fn scan<'s>(s: &'s str, mut piece: impl FnMut(Piece<'s>)) -> Result<(), ScanError<'s>> {
    let bytes = s.as_bytes();
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes[i + 1..].starts_with(b"<<") => {
                if literal_start < i {
                    piece(Piece::Text(&s[literal_start..i]));
                }
                piece(Piece::Text("<<"));
                i += 3;
                literal_start = i;
            }
            b'<' if bytes.get(i + 1) == Some(&b'<') => {
                if literal_start < i {
                    piece(Piece::Text(&s[literal_start..i]));
                }
                let body_start = i + 2;
                let Some(end) = closing(bytes, body_start) else {
                    return Err(ScanError {
                        offset: i,
                        text: s[body_start..].trim(),
                        reason: "<< has no closing >> (write \\<< for a literal <<)",
                    });
                };
                let text = s[body_start..end].trim();
                if text.is_empty() {
                    return Err(ScanError {
                        offset: i,
                        text,
                        reason: "empty expression",
                    });
                }
                piece(Piece::Expression { text, offset: i });
                i = end + 2;
                literal_start = i;
            }
            _ => i += 1,
        }
    }
    if literal_start < bytes.len() {
        piece(Piece::Text(&s[literal_start..]));
    }
    Ok(())
}

/// The byte offset of the `>>` closing an expression whose body starts at `from`, skipping
/// string literals (`"..."`, `'...'`, with `\` escapes).
fn closing(bytes: &[u8], from: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    let mut i = from;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' && bytes.get(i + 1) == Some(&b'>') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str) -> Result<Vec<Piece<'_>>, ScanError<'_>> {
        let mut out = Vec::new();
        scan(s, |p| out.push(p))?;
        Ok(out)
    }

    #[test]
    fn text_without_markers_is_one_piece() {
        assert_eq!(
            pieces("plain {{ .Values.x }}").unwrap(),
            vec![Piece::Text("plain {{ .Values.x }}")]
        );
    }

    #[test]
    fn expressions_are_trimmed_and_located() {
        assert_eq!(
            pieces("a<< x.outputs.K >>b").unwrap(),
            vec![
                Piece::Text("a"),
                Piece::Expression {
                    text: "x.outputs.K",
                    offset: 1
                },
                Piece::Text("b")
            ]
        );
    }

    #[test]
    fn escaped_markers_are_literal() {
        assert_eq!(
            pieces(r"cat \<<EOF").unwrap(),
            vec![Piece::Text("cat "), Piece::Text("<<"), Piece::Text("EOF")]
        );
    }

    #[test]
    fn closing_markers_inside_quotes_do_not_close() {
        assert_eq!(
            pieces(r#"<< default a.outputs.K ">>" >>!"#).unwrap(),
            vec![
                Piece::Expression {
                    text: r#"default a.outputs.K ">>""#,
                    offset: 0
                },
                Piece::Text("!")
            ]
        );
    }

    #[test]
    fn unclosed_and_empty_expressions_are_errors() {
        assert_eq!(pieces("x << a").unwrap_err().offset, 2);
        assert_eq!(pieces("<<   >>").unwrap_err().reason, "empty expression");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let s = "é<< a >>";
        assert_eq!(column(s, s.find("<<").unwrap()), 2);
    }
}
