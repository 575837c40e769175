//! A reader for Java `.properties` files, the format of Kafka's `server.properties`.

use indexmap::IndexMap;

/// Parses properties text: `key=value`, `key: value` or `key value`, `#` and
/// `!` comments, backslash line continuations and the common escapes.
/// Later keys override earlier ones, as in Java.
pub fn parse(text: &str) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if ends_with_continuation(line) {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        if let Some((k, v)) = split_entry(&logical) {
            out.insert(k, v);
        }
        logical.clear();
    }
    if !logical.is_empty() {
        if let Some((k, v)) = split_entry(&logical) {
            out.insert(k, v);
        }
    }
    out
}

/// An odd number of trailing backslashes continues the line.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_entry(line: &str) -> Option<(String, String)> {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    key.push(unescape(n));
                }
            }
            '=' | ':' => break,
            c if c.is_whitespace() => {
                // Whitespace ends the key; an `=` or `:` may still follow.
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() {
                        chars.next();
                    } else {
                        break;
                    }
                }
                if let Some(&n) = chars.peek() {
                    if n == '=' || n == ':' {
                        chars.next();
                    }
                }
                break;
            }
            c => key.push(c),
        }
    }
    if key.is_empty() {
        return None;
    }
    let rest: String = chars.collect();
    let mut value = String::new();
    let mut it = rest.trim_start().chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                value.push(unescape(n));
            }
        } else {
            value.push(c);
        }
    }
    Some((key, value.trim_end().to_string()))
}

fn unescape(c: char) -> char {
    match c {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'f' => '\x0c',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_kafka_style_files() {
        let text = "# comment\n! also comment\n\nlisteners=PLAINTEXT://:9092\nlog.dirs : /tmp/a,\\\n   /tmp/b\nnum.partitions 3\nkey\\=with\\:escapes = v  \n";
        let p = parse(text);
        assert_eq!(p["listeners"], "PLAINTEXT://:9092");
        assert_eq!(p["log.dirs"], "/tmp/a,/tmp/b");
        assert_eq!(p["num.partitions"], "3");
        assert_eq!(p["key=with:escapes"], "v");
        assert_eq!(p.len(), 4);
    }
}
