//! Column formulas: arithmetic over the cells of a row (`price * qty`, `(a + b) / 2`,
//! `"unit price" * 1.2`). Exact decimal arithmetic; a null operand or a division by zero
//! gives null.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::table::{Column, Value, find_column};

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(Decimal),
    /// Index into the columns the formula was compiled against.
    Column(usize),
    Neg(Box<Expr>),
    Bin(Box<Expr>, char, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormulaError {
    #[error("no column named `{0}` in the formula")]
    UnknownColumn(String),
    #[error("the formula is not valid at `{0}`")]
    Syntax(String),
    #[error("the formula is empty")]
    Empty,
}

/// Parses a formula, resolving column names (bare, or quoted with "…" or `…` when they hold
/// operator characters) against `columns`.
pub fn compile(text: &str, columns: &[Column]) -> Result<Expr, FormulaError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(FormulaError::Empty);
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        columns,
    };
    let e = p.expr()?;
    if p.pos != p.tokens.len() {
        return Err(FormulaError::Syntax(p.rest()));
    }
    Ok(e)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(Decimal),
    Name(String),
    Op(char),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, FormulaError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/()×÷".contains(c) {
            out.push(Tok::Op(match c {
                '×' => '*',
                '÷' => '/',
                other => other,
            }));
            i += 1;
        } else if c == '"' || c == '`' || c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|d| *d == c)
                .ok_or_else(|| FormulaError::Syntax(chars[i..].iter().collect()))?;
            out.push(Tok::Name(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = Decimal::from_str(&s).map_err(|_| FormulaError::Syntax(s.clone()))?;
            out.push(Tok::Num(n));
        } else {
            // A bare name runs to the next operator or parenthesis; inner spaces belong to it.
            let start = i;
            while i < chars.len() && !"+-*/()×÷\"`".contains(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect::<String>().trim().to_owned();
            out.push(Tok::Name(name));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Tok>,
    pos: usize,
    columns: &'a [Column],
}

impl Parser<'_> {
    fn rest(&self) -> String {
        self.tokens[self.pos.min(self.tokens.len())..]
            .iter()
            .map(|t| match t {
                Tok::Num(n) => n.to_string(),
                Tok::Name(n) => n.clone(),
                Tok::Op(c) => c.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn expr(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.tokens.get(self.pos).cloned() {
            self.pos += 1;
            left = Expr::Bin(Box::new(left), op, Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.factor()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.tokens.get(self.pos).cloned() {
            self.pos += 1;
            left = Expr::Bin(Box::new(left), op, Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, FormulaError> {
        let tok = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Num(n)) => Ok(Expr::Number(n)),
            Some(Tok::Name(name)) => find_column(self.columns, &name)
                .map(Expr::Column)
                .ok_or(FormulaError::UnknownColumn(name)),
            Some(Tok::Op('-')) => Ok(Expr::Neg(Box::new(self.factor()?))),
            Some(Tok::Op('(')) => {
                let e = self.expr()?;
                match self.tokens.get(self.pos) {
                    Some(Tok::Op(')')) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err(FormulaError::Syntax(self.rest())),
                }
            }
            _ => {
                self.pos -= 1;
                Err(FormulaError::Syntax(self.rest()))
            }
        }
    }
}

impl Expr {
    /// Evaluates against the cells of a row, aligned with the compiled columns.
    pub fn eval(&self, cell: &dyn Fn(usize) -> Value) -> Option<Decimal> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Column(i) => cell(*i).as_decimal(),
            Self::Neg(e) => e.eval(cell).map(|v| -v),
            Self::Bin(a, op, b) => {
                let (x, y) = (a.eval(cell)?, b.eval(cell)?);
                match op {
                    '+' => x.checked_add(y),
                    '-' => x.checked_sub(y),
                    '*' => x.checked_mul(y),
                    _ => x.checked_div(y),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ColumnType;

    fn cols() -> Vec<Column> {
        vec![
            Column::new("c1", "price", ColumnType::Decimal),
            Column::new("c2", "qty", ColumnType::Integer),
            Column::new("c3", "unit price", ColumnType::Decimal),
        ]
    }

    fn run(f: &str, cells: &[Value]) -> Option<Decimal> {
        compile(f, &cols()).ok()?.eval(&|i| cells[i].clone())
    }

    #[test]
    fn arithmetic_follows_precedence_and_is_exact() {
        let cells = [
            Value::Decimal(Decimal::new(110, 2)),
            Value::Integer(3),
            Value::Null,
        ];
        assert_eq!(run("price * qty", &cells), Some(Decimal::new(330, 2)));
        assert_eq!(
            run("(price + 0.9) * qty - 1", &cells),
            Some(Decimal::from(5))
        );
        assert_eq!(run("-qty / 2", &cells), Some(Decimal::new(-15, 1)));
    }

    #[test]
    fn nulls_and_division_by_zero_give_null() {
        let cells = [Value::Null, Value::Integer(0), Value::Null];
        assert_eq!(run("price * 2", &cells), None);
        assert_eq!(run("1 / qty", &cells), None);
    }

    #[test]
    fn names_with_spaces_work_bare_or_quoted_and_unknown_ones_are_named() {
        let cells = [
            Value::Null,
            Value::Integer(2),
            Value::Decimal(Decimal::from(5)),
        ];
        assert_eq!(run("unit price * qty", &cells), Some(Decimal::from(10)));
        assert_eq!(run("\"unit price\" * qty", &cells), Some(Decimal::from(10)));
        assert_eq!(
            compile("cost * 2", &cols()),
            Err(FormulaError::UnknownColumn("cost".into()))
        );
        assert!(compile("price *", &cols()).is_err());
        assert!(compile("(price", &cols()).is_err());
    }
}
