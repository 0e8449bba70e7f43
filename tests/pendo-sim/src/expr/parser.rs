//! Recursive-descent parser with precedence climbing and a nesting depth limit.
//!
//! Precedence (low → high): `||`, `&&`, `== !=`, `< <= > >=`, `+ -`, `* / %`, unary `! -`.

use serde_json::Value;

use super::lexer::{lex, Tok};
use super::{BinOp, Expr, UnOp};

/// Maximum nesting depth (parentheses, unary operators, calls, lists).
pub const MAX_DEPTH: usize = 64;

/// Known functions and their (min, max) argument counts.
pub const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("now", 0, 0),
    ("date", 1, 6),
    ("dateAdd", 3, 3),
    ("startOfPeriod", 2, 2),
    ("isNull", 1, 1),
    ("isNil", 1, 1),
    ("isEmpty", 1, 1),
    ("if", 3, 3),
    ("contains", 2, 2),
    ("startsWith", 2, 2),
    ("endsWith", 2, 2),
    ("len", 1, 1),
    ("toLowerCase", 1, 1),
    ("toUpperCase", 1, 1),
    ("toString", 1, 1),
    ("hash", 1, 1),
    ("expandAppIds", 1, 1),
    ("identified", 1, 1),
    ("split", 2, 2),
    ("list", 0, 64),
    ("formatTime", 2, 2),
    ("round", 1, 1),
    ("floor", 1, 1),
    ("ceil", 1, 1),
    ("abs", 1, 1),
    ("coalesce", 1, 16),
];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// Parse an expression string into an [`Expr`].
pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "unexpected token {:?} in expression {src:?}",
            p.toks[p.pos]
        ));
    }
    Ok(e)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(format!("expected {sym:?}, found {:?}", self.peek()))
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!("expression nested deeper than {MAX_DEPTH} levels"))
        } else {
            Ok(())
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let r = self.binary(0);
        self.depth -= 1;
        r
    }

    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: &[&[(&str, BinOp)]] = &[
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
            &[
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level >= LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        'outer: loop {
            for (sym, op) in LEVELS[level] {
                if self.eat(sym) {
                    let rhs = self.binary(level + 1)?;
                    lhs = Expr::Binary(*op, Box::new(lhs), Box::new(rhs));
                    continue 'outer;
                }
            }
            return Ok(lhs);
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        let op = if self.eat("!") {
            Some(UnOp::Not)
        } else if self.eat("-") {
            Some(UnOp::Neg)
        } else {
            None
        };
        match op {
            Some(op) => {
                self.enter()?;
                let inner = self.unary();
                self.depth -= 1;
                Ok(Expr::Unary(op, Box::new(inner?)))
            }
            None => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(tok) = self.peek().cloned() else {
            return Err("unexpected end of expression".into());
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Lit(crate::value::num(n))),
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Sym("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Sym("[") => {
                let items = self.args("]")?;
                Ok(Expr::List(items))
            }
            Tok::Ident(name) => match name.as_str() {
                "null" | "nil" => Ok(Expr::Lit(Value::Null)),
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                _ if self.eat("(") => {
                    let args = self.args(")")?;
                    let (_, min, max) = FUNCTIONS
                        .iter()
                        .find(|(n, _, _)| *n == name)
                        .ok_or_else(|| format!("unknown function {name:?}"))?;
                    if args.len() < *min || args.len() > *max {
                        return Err(format!(
                            "function {name} takes {min}..={max} arguments, got {}",
                            args.len()
                        ));
                    }
                    Ok(Expr::Call(name, args))
                }
                _ => {
                    let mut path = vec![name];
                    while self.eat(".") {
                        match self.peek().cloned() {
                            Some(Tok::Ident(s)) => path.push(s),
                            Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => {
                                path.push(format!("{}", n as u64))
                            }
                            other => return Err(format!("bad path segment {other:?}")),
                        }
                        self.pos += 1;
                    }
                    Ok(Expr::Path(path))
                }
            },
            Tok::Sym(s) => Err(format!("unexpected {s:?} in expression")),
        }
    }

    fn args(&mut self, close: &str) -> Result<Vec<Expr>, String> {
        self.enter()?;
        let mut out = Vec::new();
        if !self.eat(close) {
            loop {
                out.push(self.expr()?);
                if self.eat(close) {
                    break;
                }
                self.expect(",")?;
            }
        }
        self.depth -= 1;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let e = parse("a + 2 * 3 == 7 && !b").unwrap();
        match e {
            Expr::Binary(BinOp::And, l, r) => {
                assert!(matches!(*l, Expr::Binary(BinOp::Eq, _, _)));
                assert!(matches!(*r, Expr::Unary(UnOp::Not, _)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors() {
        assert!(parse("").is_err());
        assert!(parse("a +").is_err());
        assert!(parse("nosuch(1)").is_err());
        assert!(parse("now(1)").is_err());
        assert!(parse("(a").is_err());
        assert!(parse("a b").is_err());
        let deep = "(".repeat(100) + "1" + &")".repeat(100);
        assert!(parse(&deep).unwrap_err().contains("nested"));
        let bangs = "!".repeat(1000) + "a";
        assert!(parse(&bangs).is_err());
    }

    #[test]
    fn paths_and_calls() {
        assert_eq!(
            parse("metadata.auto__323232.firstvisit").unwrap(),
            Expr::Path(vec![
                "metadata".into(),
                "auto__323232".into(),
                "firstvisit".into()
            ])
        );
        assert!(matches!(
            parse("expandAppIds(`*`)").unwrap(),
            Expr::Call(..)
        ));
    }
}
