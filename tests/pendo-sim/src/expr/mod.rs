//! The C-like expression language of `filter`, `eval`, `select`, aggregator arguments and
//! `timeSeries` bounds: lexer, parser (with a recursion depth limit) and evaluator.

pub mod eval;
pub mod lexer;
pub mod parser;

use serde_json::Value;

pub use eval::EvalCtx;

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `!x`
    Not,
    /// `-x`
    Neg,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Literal (`null`, booleans, numbers, strings).
    Lit(Value),
    /// Dotted field path; a missing path evaluates to null.
    Path(Vec<String>),
    /// Unary operation.
    Unary(UnOp, Box<Expr>),
    /// Binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Function call (name validated at parse time).
    Call(String, Vec<Expr>),
    /// List literal `[a, b]`.
    List(Vec<Expr>),
}

/// Parse an expression string.
pub fn parse(src: &str) -> Result<Expr, String> {
    parser::parse(src)
}

/// Parse a JSON value used where an expression is expected: strings are parsed,
/// numbers/booleans/null become literals.
pub fn parse_value(v: &Value) -> Result<Expr, String> {
    match v {
        Value::String(s) => parse(s),
        Value::Number(_) | Value::Bool(_) | Value::Null => Ok(Expr::Lit(v.clone())),
        other => Err(format!("expected an expression string, got {other}")),
    }
}
