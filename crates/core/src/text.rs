//! What a display name or a chat message may contain. Declared as a submodule of
//! [`crate::limits`] and re-exported there, so callers keep `limits::validate_name`.
//!
//! "Visible" means: a character that draws something by itself. The tables below list what does
//! not, each range from the Unicode Character Database (UCD 15.1) with the property it comes from,
//! so that a name or message made only of them ("​", "ㅤ", "⠀", a soft hyphen after a word
//! joiner…) is refused although every character is "allowed". This crate depends only on serde,
//! so the ranges are written out rather than taken from a Unicode crate.

use crate::limits::{CHAT_MAX_CHARS, NAME_MAX_CHARS};

/// Why a name or chat text was refused; the message goes into the error frame.
pub type Invalid = String;

/// Inclusive ranges of code points, sorted, not overlapping.
type Ranges = &'static [(u32, u32)];

/// General_Category=Format (Cf), UCD 15.1 `DerivedGeneralCategory.txt`: soft hyphen, zero-width
/// space/joiners, bidi marks, embeddings, overrides and isolates, word joiner and invisible
/// operators, BOM, interlinear annotation, Egyptian/shorthand/musical format controls, tags.
const FORMAT: Ranges = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// General_Category=Space_Separator (Zs), Line_Separator (Zl) and Paragraph_Separator (Zp),
/// `DerivedGeneralCategory.txt`: U+0020, no-break spaces, the U+2000 spaces, U+2028, U+2029,
/// U+3000. (Controls, Cc, are tested with `char::is_control`.)
const SEPARATORS: Ranges = &[
    (0x0020, 0x0020),
    (0x00A0, 0x00A0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
];

/// Default_Ignorable_Code_Point (`DerivedCoreProperties.txt`) that are not Cf: letters and marks
/// that renderers draw as nothing. The Hangul fillers U+115F, U+1160, U+3164 and U+FFA0 are Lo
/// (so `char::is_alphabetic` says yes) yet blank; the combining grapheme joiner, Khmer inherent
/// vowels, Mongolian and standard variation selectors (U+FE00–FE0F, U+E0100–E01EF) modify the
/// character before them; U+2065, U+FFF0–FFF8 and the rest of U+E0000–E0FFF are reserved as
/// ignorable, so a future version cannot make them visible.
const IGNORABLE: Ranges = &[
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180D),
    (0x180F, 0x180F),
    (0x2065, 0x2065),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
];

/// U+2800 BRAILLE PATTERN BLANK: General_Category=So, but a cell with no dots; widely used as an
/// "empty" name because no trimming removes it.
const BLANK_SYMBOLS: Ranges = &[(0x2800, 0x2800)];

/// The combining-mark blocks (`Blocks.txt`; their assigned characters are Mn or Me): Combining
/// Diacritical Marks, Cyrillic combining marks, …Extended, …Supplement, …for Symbols, Combining
/// Half Marks. A mark draws only on the character before it, so text of marks alone has nothing
/// to draw on. (Script-specific marks such as Indic vowel signs are not listed: they do not
/// occur alone in practice, and a full Mn table would be ~350 ranges.)
const COMBINING: Ranges =
    &[(0x0300, 0x036F), (0x0483, 0x0489), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F)];

fn in_ranges(c: char, table: Ranges) -> bool {
    let cp = u32::from(c);
    // The first range ending at or after `cp` is the only one that can hold it.
    let i = table.partition_point(|&(_, hi)| hi < cp);
    table.get(i).is_some_and(|&(lo, _)| lo <= cp)
}

/// True for a character that draws something by itself (see the tables above for what does not).
pub fn is_visible(c: char) -> bool {
    !(c.is_control()
        || in_ranges(c, FORMAT)
        || in_ranges(c, SEPARATORS)
        || in_ranges(c, IGNORABLE)
        || in_ranges(c, BLANK_SYMBOLS)
        || in_ranges(c, COMBINING))
}

/// Explicit bidi embeddings/overrides (U+202A–202E) and isolates (U+2066–2069): they reorder
/// the text after them (the "Trojan Source" set, CVE-2021-42574), so one user could make others
/// misread a message or the names around one.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Refused in chat: C0/C1 controls except newline and tab, and the bidi controls. Zero-width
/// joiners stay allowed because emoji sequences need them; LRM/RLM because mixed-direction text
/// needs them; U+2028/U+2029 because they are line breaks, which chat keeps.
fn is_forbidden_in_text(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c)
}

/// Refused in names, which are one line shown among others' names: every control (newlines too),
/// the bidi controls, U+2028/U+2029 (line and paragraph separators break the line like `\n`),
/// and the bidi marks LRM, RLM and ALM (U+200E, U+200F, U+061C), which change how a name's
/// neutral characters (digits, brackets) order next to its neighbours.
fn is_forbidden_in_name(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Trims a display name and checks it: 1–[`NAME_MAX_CHARS`] characters, at least one of them
/// visible, none of the [`is_forbidden_in_name`] ones. HTML is allowed and stays literal: names
/// travel as JSON strings and clients render text.
pub fn validate_name(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("name must have at least one visible character".into());
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(format!("name is longer than {NAME_MAX_CHARS} characters"));
    }
    if name.chars().any(is_forbidden_in_name) {
        return Err("name contains control, line-separator or bidirectional characters".into());
    }
    if !name.chars().any(is_visible) {
        return Err("name must have at least one visible character".into());
    }
    Ok(name.to_owned())
}

/// Checks a chat message: 1–[`CHAT_MAX_CHARS`] characters with at least one visible one; newlines
/// and tabs are kept, other control characters and bidi controls refused. The text is stored
/// exactly as sent.
pub fn validate_text(text: &str) -> Result<(), Invalid> {
    if text.is_empty() {
        return Err("message is empty".into());
    }
    if text.chars().count() > CHAT_MAX_CHARS {
        return Err(format!("message is longer than {CHAT_MAX_CHARS} characters"));
    }
    if text.chars().any(is_forbidden_in_text) {
        return Err("message contains control or bidirectional override characters".into());
    }
    if !text.chars().any(is_visible) {
        return Err("message has no visible character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_disjoint() {
        for table in [FORMAT, SEPARATORS, IGNORABLE, BLANK_SYMBOLS, COMBINING] {
            for w in table.windows(2) {
                assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:x?}");
            }
        }
    }

    #[test]
    fn visibility_per_category() {
        for c in ['a', 'Z', '7', 'é', 'ß', '한', '中', '😀', '<', '.', '_', '⠁', '\u{FFFC}'] {
            assert!(is_visible(c), "{c:?} U+{:04X} is visible", u32::from(c));
        }
        let invisible = [
            '\u{0000}',
            '\t',
            '\n',
            '\u{007F}',
            '\u{0085}', // Cc
            ' ',
            '\u{00A0}',
            '\u{2003}',
            '\u{3000}',
            '\u{2028}',
            '\u{2029}', // Zs, Zl, Zp
            '\u{00AD}',
            '\u{200B}',
            '\u{200D}',
            '\u{200E}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{E0041}', // Cf
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}', // Hangul fillers
            '\u{2800}', // braille blank
            '\u{FE0F}',
            '\u{E0100}',
            '\u{180B}',
            '\u{034F}', // variation selectors, CGJ
            '\u{0301}',
            '\u{20DD}',
            '\u{1DC0}', // combining marks
        ];
        for c in invisible {
            assert!(!is_visible(c), "U+{:04X} is not visible", u32::from(c));
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Ada  ").unwrap(), "Ada");
        assert!(validate_name("   ").is_err());
        assert!(validate_name("").is_err());
        assert_eq!(validate_name(&"é".repeat(32)).unwrap().chars().count(), 32);
        assert!(validate_name(&"é".repeat(33)).is_err());
        assert!(validate_name("a\u{0007}b").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("evil\u{202E}txt").is_err());
        assert_eq!(validate_name("<b>x</b>").unwrap(), "<b>x</b>");
        assert_eq!(validate_name("👩‍💻").unwrap(), "👩‍💻");
    }

    #[test]
    fn names_need_a_visible_character() {
        for name in ["\u{200B}", "\u{3164}", "\u{3164}\u{3164}", "\u{2800}", "\u{2060}\u{00AD}", "\u{115F}\u{1160}"] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
        assert!(validate_name("\u{0301}\u{0301}").is_err(), "combining marks alone");
        assert!(validate_name("\u{FE0F}").is_err(), "a variation selector alone");
        // Invisible characters next to a visible one are fine (emoji need ZWJ and VS16).
        assert_eq!(validate_name("e\u{0301}").unwrap(), "e\u{0301}");
        assert_eq!(validate_name("❤\u{FE0F}").unwrap(), "❤\u{FE0F}");
        assert_eq!(
            validate_name("🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}").unwrap().chars().count(),
            7
        );
        assert_eq!(validate_name("Ada Lovelace").unwrap(), "Ada Lovelace");
        assert_eq!(validate_name("עדה").unwrap(), "עדה");
    }

    #[test]
    fn names_refuse_line_separators_and_bidi_marks() {
        for name in ["a\u{2028}b", "a\u{2029}b", "a\u{200E}b", "a\u{200F}b", "a\u{061C}b", "x\u{2066}y", "\u{2028}"] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn texts_keep_newlines_and_refuse_controls() {
        assert!(validate_text("hi\nthere\tyou").is_ok());
        assert!(validate_text(" \n ").is_err());
        assert!(validate_text("").is_err());
        assert!(validate_text(&"x".repeat(2000)).is_ok());
        assert!(validate_text(&"x".repeat(2001)).is_err());
        assert!(validate_text("bell\u{0007}").is_err());
        assert!(validate_text("a\u{2066}b").is_err());
        assert!(validate_text("<img src=x onerror=alert(1)>").is_ok());
    }

    #[test]
    fn texts_need_a_visible_character() {
        for text in ["\u{200B}", "\u{3164}", "\u{2800}", "\u{2060}\u{00AD}", "\u{200B}\n\u{3164}\t\u{2800}", "\u{2028}"]
        {
            assert!(validate_text(text).is_err(), "{text:?}");
        }
        // Line separators and bidi marks are kept in chat, next to visible text.
        assert!(validate_text("a\u{2028}b").is_ok());
        assert!(validate_text("\u{200F}שלום").is_ok());
        assert!(validate_text("ok\u{200B}").is_ok());
    }
}
