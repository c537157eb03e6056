//! Escaping of text the master prints in text mode: whatever a worker or a config
//! supplies (log lines, status texts, group and host names, error messages) may
//! hold newlines, carriage returns, escape sequences or other control characters.
//! Printed raw they could forge a whole master line or drive the terminal; escaped,
//! one record stays one visible line. JSON output stays exact (JSON escapes them).

/// True when `text` holds a byte that must be escaped: a C0 control character
/// other than tab, DEL, or the first byte of a C1 control character (U+0080 to
/// U+009F, encoded 0xC2 0x80..0x9F). The common case is a word-at-a-time scan that
/// finds nothing.
pub(crate) fn needs_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    if memchr::memchr2(0x7f, 0xc2, bytes).is_some() {
        return bytes.iter().any(|&b| is_control_byte(b)) || has_c1(text);
    }
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if has_byte_below_space(u64::from_ne_bytes(word))
            && chunk.iter().any(|&b| is_control_byte(b))
        {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| is_control_byte(b))
}

/// True when `text` holds a byte that a JSON string must escape: a quote, a
/// backslash or a byte below 0x20 (a word-at-a-time scan in the common case).
pub(crate) fn json_needs_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    if memchr::memchr2(b'"', b'\\', bytes).is_some() {
        return true;
    }
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if has_byte_below_space(u64::from_ne_bytes(word)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20)
}

/// Appends `text` as a JSON string: copied as it is when nothing in it needs an
/// escape (most log lines), else written by serde_json.
pub(crate) fn push_json_str(buf: &mut Vec<u8>, text: &str) {
    if json_needs_escape(text) {
        let _ = serde_json::to_writer(&mut *buf, text);
    } else {
        buf.reserve(text.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    }
}

/// Whether any byte of the word is below 0x20 (tabs included: the caller checks
/// the bytes again).
fn has_byte_below_space(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    (x.wrapping_sub(ONES * 0x20) & !x & HIGHS) != 0
}

fn is_control_byte(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn has_c1(text: &str) -> bool {
    text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c))
}

/// Appends `text`, with control characters written as visible escapes: `\n`,
/// `\r`, `\e` for ESC, `\xNN` or `\u{NN}` for the rest.
pub(crate) fn push_escaped(buf: &mut Vec<u8>, text: &str) {
    if !needs_escape(text) {
        buf.extend_from_slice(text.as_bytes());
        return;
    }
    for c in text.chars() {
        match c {
            '\n' => buf.extend_from_slice(b"\\n"),
            '\r' => buf.extend_from_slice(b"\\r"),
            '\u{1b}' => buf.extend_from_slice(b"\\e"),
            '\t' => buf.push(b'\t'),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                buf.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes());
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                buf.extend_from_slice(format!("\\u{{{:x}}}", c as u32).as_bytes());
            }
            c => {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
    }
}

/// `text` escaped as by [`push_escaped`], as a string.
pub(crate) fn escaped(text: &str) -> String {
    if !needs_escape(text) {
        return text.to_string();
    }
    let mut buf = Vec::with_capacity(text.len() + 8);
    push_escaped(&mut buf, text);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_what_serde_json_writes() {
        for text in [
            "",
            "plain line of text, long enough for words",
            "a \"quote\"",
            "back\\slash",
            "tab\there",
            "bell\u{7}in the ninth byte",
            "é ü \u{85} \u{7f}",
        ] {
            let mut ours = Vec::new();
            push_json_str(&mut ours, text);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    fn esc(s: &str) -> String {
        let mut b = Vec::new();
        push_escaped(&mut b, s);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(esc("a\nb\rc"), "a\\nb\\rc");
        assert_eq!(esc("\u{1b}[31mred\u{1b}[0m"), "\\e[31mred\\e[0m");
        assert_eq!(esc("bell\u{7}del\u{7f}"), "bell\\x07del\\x7f");
        assert_eq!(esc("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(esc("tab\tstays"), "tab\tstays");
        assert_eq!(esc("plain text, ünïcödé"), "plain text, ünïcödé");
    }

    #[test]
    fn the_fast_scan_agrees_with_the_slow_one() {
        let samples = [
            "",
            "x",
            "0123456789abcdef",
            "0123456\u{1}89abcdef",
            "\t\t\t\t\t\t\t\t\t",
            "é",
            "aaaaaaaaaaaaaaa\u{1b}",
            "\u{85}",
            "ok\u{7f}",
        ];
        for s in samples {
            let slow = s.chars().any(|c| {
                ((c as u32) < 0x20 && c != '\t')
                    || c == '\u{7f}'
                    || ('\u{80}'..='\u{9f}').contains(&c)
            });
            assert_eq!(needs_escape(s), slow, "{s:?}");
        }
    }
}
