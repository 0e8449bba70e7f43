//! Tokeniser for the expression language (double-quoted and back-tick strings).

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Number literal.
    Num(f64),
    /// String literal (unescaped).
    Str(String),
    /// Identifier.
    Ident(String),
    /// Operator or punctuation: `( ) [ ] , . == != <= >= < > && || ! + - * / %`.
    Sym(&'static str),
}

const SYMS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ",", ".", "<", ">", "!", "+", "-", "*",
    "/", "%",
];

/// Maximum expression length accepted.
pub const MAX_LEN: usize = 64 * 1024;

/// Split `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Tok>, String> {
    if src.len() > MAX_LEN {
        return Err("expression too long".into());
    }
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                // A dot is part of the number only when followed by a digit.
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let n: f64 = text
                .parse()
                .map_err(|_| format!("invalid number literal {text:?}"))?;
            out.push(Tok::Num(n));
        } else if c == '"' || c == '`' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err("unterminated string literal".into());
                };
                i += 1;
                if ch == quote {
                    break;
                }
                if ch == '\\' && quote == '"' {
                    let Some(&esc) = chars.get(i) else {
                        return Err("unterminated string literal".into());
                    };
                    i += 1;
                    s.push(match esc {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                } else {
                    s.push(ch);
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let sym = SYMS
                .iter()
                .find(|s| rest.starts_with(**s))
                .ok_or_else(|| format!("unexpected character {c:?} at offset {i}"))?;
            i += sym.chars().count();
            out.push(Tok::Sym(sym));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_strings_and_numbers() {
        let t = lex("a.b == `x` && c != \"y\\\"z\" || 1.5e3 >= 2").unwrap();
        assert_eq!(t[0], Tok::Ident("a".into()));
        assert_eq!(t[1], Tok::Sym("."));
        assert_eq!(t[4], Tok::Str("x".into()));
        assert_eq!(t[8], Tok::Str("y\"z".into()));
        assert_eq!(t[10], Tok::Num(1500.0));
        assert!(lex("\"open").is_err());
        assert!(lex("a # b").is_err());
    }
}
