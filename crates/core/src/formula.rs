//! Column formulas: arithmetic over the cells of a row (`price * qty`, `(a + b) / 2`,
//! `"unit price" * 1.2`, `Revenue / Passengers 2023`).
//!
//! **Bounded.** A formula is user input (a request, or a chat message to a model), so nothing
//! here recurses over it: a recursive-descent parser, a tree evaluator or the `Drop` of a deep
//! tree would overflow the 2 MiB worker stack on `((((…))))` or `a+1+1+…` and abort the whole
//! process, which no panic handler can catch. [`compile`] checks the length before reading
//! anything, parses with an explicit operator stack (shunting-yard) whose parenthesis depth is
//! checked against [`Limits::max_depth`], and gives a flat program in postfix order; evaluation
//! runs it over a value stack. Every cost is linear in the formula's length.
//!
//! **Typed.** The result's type follows its operands, as a person reads the formula (the rules
//! are in the README's *Tables* section and in [`combine`]): money ± money (same currency) and
//! money × or ÷ a number are money in that currency; money ÷ money is a plain decimal; a
//! percent takes part as its fraction (38 % is 0.38, as in every spreadsheet) and a percent
//! ± a percent stays a percent; integer ÷ integer is a decimal. Results are rounded to the
//! scale a person would choose: money to its currency's minor unit (2 places, 0 for JPY, 3 for
//! KWD…), decimals and percents to at most [`DECIMAL_PLACES`] places, trailing zeros dropped.
//! The stored value is that rounded one, so the grid, CSV, JSON and XLSX show the same number.
//!
//! A null operand or a division by zero gives null; what a row cannot give (two currencies in
//! one calculation, a result too large, a cell that is not a number) is a [`CellError`] that
//! the caller reports with the row, never a silent null.
//!
//! The postfix program is also the shape live formula columns can grow from: rendering it as
//! Excel or Sheets text is one more walk over the same steps with a stack of strings.

use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::table::{Column, ColumnType, ConvertError, Money, Value, find_column};

/// Places kept in decimal and percent results (trailing zeros dropped): `1 / 3` is
/// `0.3333333333`.
pub const DECIMAL_PLACES: u32 = 10;

/// How long and how deeply nested a formula may be. The defaults are Excel's own limits for a
/// formula (8,192 characters, 64 levels of nesting), so any accepted formula could one day be
/// written into a workbook as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Characters (Unicode scalar values) in the formula's text.
    pub max_chars: usize,
    /// Parentheses open at once.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_chars: 8192,
            max_depth: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormulaError {
    #[error("no column named `{0}` in the formula")]
    UnknownColumn(String),
    #[error("column `{column}` is {ty}; a formula computes with numbers, money and percents")]
    NotNumeric { column: String, ty: ColumnType },
    #[error("the formula is not valid at `{0}`")]
    Syntax(String),
    #[error("the formula is empty")]
    Empty,
    #[error("the formula has {chars} characters; at most {max} are allowed")]
    TooLong { chars: usize, max: usize },
    #[error("the formula nests parentheses more than {max} deep")]
    TooDeep { max: usize },
}

/// Why one row has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    #[error("`{0}` and `{1}` are different currencies")]
    Currencies(String, String),
    #[error("the result is too large")]
    Overflow,
    #[error("`{0}` is not a number")]
    NotANumber(String),
}

/// What a value is in arithmetic; the static type of every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer,
    Decimal,
    Float,
    Money,
    Percent,
}

impl Kind {
    fn of(ty: ColumnType) -> Option<Self> {
        Some(match ty {
            ColumnType::Integer => Self::Integer,
            ColumnType::Decimal => Self::Decimal,
            ColumnType::Float => Self::Float,
            ColumnType::Currency => Self::Money,
            ColumnType::Percent => Self::Percent,
            _ => return None,
        })
    }

    fn column_type(self) -> ColumnType {
        match self {
            Self::Integer => ColumnType::Integer,
            Self::Decimal => ColumnType::Decimal,
            Self::Float => ColumnType::Float,
            Self::Money => ColumnType::Currency,
            Self::Percent => ColumnType::Percent,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    fn precedence(self) -> u8 {
        match self {
            Self::Add | Self::Sub => 1,
            Self::Mul | Self::Div => 2,
        }
    }
}

/// The type of `a op b`. Money stays money where it keeps its meaning (a sum of amounts, an
/// amount scaled or shared out); a ratio of amounts, or a number per amount, is a plain
/// decimal. A percent is its fraction; percents added, subtracted or multiplied stay percents.
/// Otherwise the wider number wins (integer < decimal < float), and integer ÷ integer is a
/// decimal.
fn combine(a: Kind, op: BinOp, b: Kind) -> Kind {
    use Kind::*;
    match (a, op, b) {
        (Money, BinOp::Mul | BinOp::Div, Money) => Decimal,
        (_, BinOp::Div, Money) => Decimal,
        (Money, _, _) | (_, BinOp::Add | BinOp::Sub | BinOp::Mul, Money) => Money,
        (Percent, BinOp::Add | BinOp::Sub | BinOp::Mul, Percent) => Percent,
        (Float, _, _) | (_, _, Float) => Float,
        (Integer, BinOp::Add | BinOp::Sub | BinOp::Mul, Integer) => Integer,
        _ => Decimal,
    }
}

/// One step of the postfix program.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Number(Decimal),
    /// Index into the columns the formula was compiled against.
    Column(usize),
    Neg,
    Bin(BinOp),
}

/// A compiled formula: a postfix program over the columns it was compiled against, and the
/// type of its result.
#[derive(Clone, Debug, PartialEq)]
pub struct Formula {
    steps: Vec<Step>,
    kind: Kind,
    /// Values on the stack at most while it runs.
    stack: usize,
}

/// Parses a formula, resolving column names (bare, or quoted with "…", '…' or `…` when they
/// hold operator characters) against `columns`, within `limits`.
pub fn compile(text: &str, columns: &[Column], limits: &Limits) -> Result<Formula, FormulaError> {
    // Counted before anything else is done with the text, and only as far as the limit.
    let chars = text
        .chars()
        .take(limits.max_chars.saturating_add(1))
        .count();
    if chars > limits.max_chars {
        return Err(FormulaError::TooLong {
            chars: text.chars().count(),
            max: limits.max_chars,
        });
    }
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(FormulaError::Empty);
    }
    Parser {
        tokens: &tokens,
        columns,
        limits,
    }
    .parse()
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(Decimal),
    Name(String),
    Op(char),
}

const OPERATORS: &str = "+-*/()×÷";

fn tokenize(text: &str) -> Result<Vec<Tok>, FormulaError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if OPERATORS.contains(c) {
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
                .ok_or_else(|| FormulaError::Syntax(shown(&chars[i..])))?;
            out.push(Tok::Name(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let n = Decimal::from_str(&chars[start..i].iter().collect::<String>())
                .map_err(|_| FormulaError::Syntax(shown(&chars[start..i])))?;
            out.push(Tok::Num(n));
        } else {
            // A bare name runs to the next operator or parenthesis; inner spaces belong to it.
            let start = i;
            while i < chars.len() && !OPERATORS.contains(chars[i]) && !"\"`".contains(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect::<String>().trim().to_owned();
            out.push(Tok::Name(name));
        }
    }
    Ok(out)
}

/// At most 40 characters of the text, for an error message.
fn shown(chars: &[char]) -> String {
    let mut s: String = chars.iter().take(40).collect();
    if chars.len() > 40 {
        s.push('…');
    }
    s
}

/// An entry of the operator stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Open,
    Neg,
    Bin(BinOp),
}

struct Parser<'a> {
    tokens: &'a [Tok],
    columns: &'a [Column],
    limits: &'a Limits,
}

impl Parser<'_> {
    /// The tokens from `at` on, for an error message.
    fn rest(&self, at: usize) -> String {
        let mut out = String::new();
        for t in self.tokens.iter().skip(at) {
            if out.chars().count() >= 40 {
                out.push('…');
                break;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            match t {
                Tok::Num(n) => out.push_str(&n.to_string()),
                Tok::Name(n) => out.push_str(n),
                Tok::Op(c) => out.push(*c),
            }
        }
        out
    }

    /// Shunting-yard: operands go straight to the program, operators wait on `pending` until
    /// one of lower precedence (or a closing parenthesis) comes. `kinds` mirrors the values
    /// the program would have on its stack, so types are checked as steps are emitted.
    fn parse(&self) -> Result<Formula, FormulaError> {
        let mut steps = Vec::with_capacity(self.tokens.len());
        let mut kinds: Vec<Kind> = Vec::new();
        let mut stack = 0usize;
        let mut pending: Vec<Pending> = Vec::new();
        let mut depth = 0usize;
        // True where an operand must come next (start, after an operator or `(`).
        let mut want_operand = true;
        for (at, tok) in self.tokens.iter().enumerate() {
            if want_operand {
                match tok {
                    Tok::Num(n) => {
                        steps.push(Step::Number(*n));
                        kinds.push(if n.scale() == 0 {
                            Kind::Integer
                        } else {
                            Kind::Decimal
                        });
                        want_operand = false;
                    }
                    Tok::Name(name) => {
                        let i = find_column(self.columns, name)
                            .ok_or_else(|| FormulaError::UnknownColumn(name.clone()))?;
                        let column = &self.columns[i];
                        let kind = Kind::of(column.ty).ok_or_else(|| FormulaError::NotNumeric {
                            column: column.name.clone(),
                            ty: column.ty,
                        })?;
                        steps.push(Step::Column(i));
                        kinds.push(kind);
                        want_operand = false;
                    }
                    Tok::Op('-') => pending.push(Pending::Neg),
                    Tok::Op('+') => {} // a unary plus changes nothing
                    Tok::Op('(') => {
                        depth += 1;
                        if depth > self.limits.max_depth {
                            return Err(FormulaError::TooDeep {
                                max: self.limits.max_depth,
                            });
                        }
                        pending.push(Pending::Open);
                    }
                    Tok::Op(_) => return Err(FormulaError::Syntax(self.rest(at))),
                }
                stack = stack.max(kinds.len());
                continue;
            }
            let op = match tok {
                Tok::Op('+') => BinOp::Add,
                Tok::Op('-') => BinOp::Sub,
                Tok::Op('*') => BinOp::Mul,
                Tok::Op('/') => BinOp::Div,
                Tok::Op(')') => {
                    loop {
                        match pending.pop() {
                            Some(Pending::Open) => break,
                            Some(p) => emit(p, &mut steps, &mut kinds),
                            None => return Err(FormulaError::Syntax(self.rest(at))),
                        }
                    }
                    depth -= 1;
                    continue;
                }
                _ => return Err(FormulaError::Syntax(self.rest(at))),
            };
            // Unary minus binds tighter than any binary operator; all binary ones are
            // left-associative.
            while let Some(&top) = pending.last() {
                let tighter = match top {
                    Pending::Neg => true,
                    Pending::Bin(b) => b.precedence() >= op.precedence(),
                    Pending::Open => false,
                };
                if !tighter {
                    break;
                }
                pending.pop();
                emit(top, &mut steps, &mut kinds);
            }
            pending.push(Pending::Bin(op));
            want_operand = true;
        }
        if want_operand {
            return Err(FormulaError::Syntax(
                self.rest(self.tokens.len().saturating_sub(1)),
            ));
        }
        while let Some(p) = pending.pop() {
            if p == Pending::Open {
                return Err(FormulaError::Syntax(format!(
                    "{} (a parenthesis is not closed)",
                    self.rest(0)
                )));
            }
            emit(p, &mut steps, &mut kinds);
        }
        match kinds.as_slice() {
            [kind] => Ok(Formula {
                steps,
                kind: *kind,
                stack,
            }),
            _ => Err(FormulaError::Syntax(self.rest(0))),
        }
    }
}

/// Appends an operator's step and its type.
fn emit(p: Pending, steps: &mut Vec<Step>, kinds: &mut Vec<Kind>) {
    match p {
        Pending::Neg => steps.push(Step::Neg),
        Pending::Bin(op) => {
            // An operator follows two operands by construction; `kinds` holds them.
            if let (Some(b), Some(a)) = (kinds.pop(), kinds.pop()) {
                kinds.push(combine(a, op, b));
            }
            steps.push(Step::Bin(op));
        }
        Pending::Open => {}
    }
}

/// A number on the evaluation stack: a percent already as its fraction, money with its
/// currency.
#[derive(Clone, Debug)]
struct Num<'v> {
    value: Decimal,
    currency: Option<&'v str>,
}

impl Formula {
    /// The type of the results.
    pub fn result_type(&self) -> ColumnType {
        self.kind.column_type()
    }

    /// The result for one row, given the cells of the compiled columns (by index), typed and
    /// rounded as the module docs say.
    pub fn eval<'v>(&self, cell: impl Fn(usize) -> &'v Value) -> Result<Value, CellError> {
        let mut stack: Vec<Option<Num<'v>>> = Vec::with_capacity(self.stack);
        for step in &self.steps {
            match step {
                Step::Number(n) => stack.push(Some(Num {
                    value: *n,
                    currency: None,
                })),
                Step::Column(i) => stack.push(operand(cell(*i))?),
                Step::Neg => {
                    if let Some(Some(top)) = stack.last_mut() {
                        top.value = -top.value;
                    }
                }
                Step::Bin(op) => {
                    let (Some(b), Some(a)) = (stack.pop(), stack.pop()) else {
                        // Not reachable for a compiled program; no panic for it either.
                        return Ok(Value::Null);
                    };
                    stack.push(match (a, b) {
                        (Some(a), Some(b)) => apply(a, *op, b)?,
                        _ => None,
                    });
                }
            }
        }
        match stack.pop().flatten() {
            None => Ok(Value::Null),
            Some(n) => self.finish(n),
        }
    }

    fn finish(&self, n: Num<'_>) -> Result<Value, CellError> {
        let rounded = |d: Decimal, places: u32| {
            let mut d = d.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
            if d.is_zero() {
                d.set_sign_positive(true);
            }
            d
        };
        Ok(match self.kind {
            Kind::Integer => Value::Integer(n.value.trunc().to_i64().ok_or(CellError::Overflow)?),
            Kind::Decimal => Value::Decimal(rounded(n.value, DECIMAL_PLACES).normalize()),
            Kind::Float => {
                let d = rounded(n.value, DECIMAL_PLACES).normalize();
                Value::Float(d.to_string().parse().map_err(|_| CellError::Overflow)?)
            }
            Kind::Percent => {
                let percent = n
                    .value
                    .checked_mul(Decimal::ONE_HUNDRED)
                    .ok_or(CellError::Overflow)?;
                Value::Percent(rounded(percent, DECIMAL_PLACES).normalize())
            }
            Kind::Money => {
                let currency = n.currency.unwrap_or_default().to_owned();
                let places = minor_unit(&currency);
                let mut amount = rounded(n.value, places);
                amount.rescale(places);
                Value::Currency(Money { amount, currency })
            }
        })
    }
}

/// A result converted to the type a change asked for, read as a spreadsheet reads it: a plain
/// number asked for as a percent is a fraction (0.38 becomes 38 %), a percent asked for as a
/// number gives its fraction; anything else converts as [`Value::convert`] does. Call it only
/// when `to` differs from [`Formula::result_type`].
pub fn convert_result(value: Value, to: ColumnType) -> Result<Value, ConvertError> {
    let too_large = |v: &Value| ConvertError {
        value: v.to_string(),
        ty: to,
    };
    match (&value, to) {
        (Value::Integer(_) | Value::Decimal(_) | Value::Float(_), ColumnType::Percent) => {
            let percent = value
                .as_decimal()
                .and_then(|d| d.checked_mul(Decimal::ONE_HUNDRED))
                .ok_or_else(|| too_large(&value))?;
            Ok(Value::Percent(
                percent
                    .round_dp_with_strategy(DECIMAL_PLACES, RoundingStrategy::MidpointAwayFromZero)
                    .normalize(),
            ))
        }
        (Value::Percent(p), ColumnType::Integer | ColumnType::Decimal | ColumnType::Float) => {
            let fraction = p
                .checked_div(Decimal::ONE_HUNDRED)
                .ok_or_else(|| too_large(&value))?;
            Value::Decimal(fraction.normalize()).convert(to)
        }
        _ => value.convert(to),
    }
}

/// A cell as an operand: null stays null, a percent is its fraction, anything that is not a
/// number is an error (a formula is compiled only over numeric columns, so this is a cell a
/// type change could not convert).
fn operand(value: &Value) -> Result<Option<Num<'_>>, CellError> {
    let num = |value| {
        Ok(Some(Num {
            value,
            currency: None,
        }))
    };
    match value {
        Value::Null => Ok(None),
        Value::Integer(i) => num(Decimal::from(*i)),
        Value::Decimal(d) => num(*d),
        Value::Percent(p) => num(p
            .checked_div(Decimal::ONE_HUNDRED)
            .ok_or(CellError::Overflow)?),
        Value::Currency(m) => Ok(Some(Num {
            value: m.amount,
            currency: Some(&m.currency),
        })),
        Value::Float(_) => match value.as_decimal() {
            Some(d) => num(d),
            None => Err(CellError::NotANumber(value.to_string())),
        },
        other => Err(CellError::NotANumber(other.to_string())),
    }
}

fn apply<'v>(a: Num<'v>, op: BinOp, b: Num<'v>) -> Result<Option<Num<'v>>, CellError> {
    let currency = match (a.currency, b.currency) {
        (Some(x), Some(y)) if !x.eq_ignore_ascii_case(y) => {
            return Err(CellError::Currencies(x.to_owned(), y.to_owned()));
        }
        // A ratio of amounts, or a number per amount, is no amount.
        (Some(_), Some(_)) if matches!(op, BinOp::Mul | BinOp::Div) => None,
        (None, Some(_)) if op == BinOp::Div => None,
        (x, y) => x.or(y),
    };
    let value = match op {
        BinOp::Add => a.value.checked_add(b.value),
        BinOp::Sub => a.value.checked_sub(b.value),
        BinOp::Mul => a.value.checked_mul(b.value),
        BinOp::Div if b.value.is_zero() => return Ok(None),
        BinOp::Div => a.value.checked_div(b.value),
    }
    .ok_or(CellError::Overflow)?;
    Ok(Some(Num { value, currency }))
}

/// Decimal places of a currency's minor unit (ISO 4217); 2 for codes not listed and for
/// symbols kept as written.
pub fn minor_unit(currency: &str) -> u32 {
    const NONE: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let code = currency.trim();
    if NONE.iter().any(|c| c.eq_ignore_ascii_case(code)) {
        0
    } else if THREE.iter().any(|c| c.eq_ignore_ascii_case(code)) {
        3
    } else if ["CLF", "UYW"].iter().any(|c| c.eq_ignore_ascii_case(code)) {
        4
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<Column> {
        vec![
            Column::new("c1", "price", ColumnType::Decimal),
            Column::new("c2", "qty", ColumnType::Integer),
            Column::new("c3", "unit price", ColumnType::Decimal),
            Column::new("c4", "Revenue", ColumnType::Currency),
            Column::new("c5", "Passengers 2023", ColumnType::Integer),
            Column::new("c6", "Growth", ColumnType::Percent),
            Column::new("c7", "Cost", ColumnType::Currency),
            Column::new("c8", "city", ColumnType::Text),
            Column::new("c9", "Share", ColumnType::Percent),
            Column::new("c10", "ratio", ColumnType::Float),
        ]
    }

    fn money(amount: &str, currency: &str) -> Value {
        Value::Currency(Money {
            amount: dec(amount),
            currency: currency.to_owned(),
        })
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A row: price 1.10, qty 3, no unit price, revenue 1,234,567.89 USD, 43,123 passengers,
    /// growth 38 %, cost 1,000 USD, city Paris, share 12.5 %, ratio 0.5.
    fn row() -> Vec<Value> {
        vec![
            Value::Decimal(dec("1.10")),
            Value::Integer(3),
            Value::Null,
            money("1234567.89", "USD"),
            Value::Integer(43_123),
            Value::Percent(dec("38")),
            money("1000", "USD"),
            Value::Text("Paris".into()),
            Value::Percent(dec("12.5")),
            Value::Float(0.5),
        ]
    }

    fn run_on(f: &str, cells: &[Value]) -> Result<Value, CellError> {
        let formula = compile(f, &cols(), &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
        formula.eval(|i| &cells[i])
    }

    fn run(f: &str) -> Value {
        run_on(f, &row()).unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    fn type_of(f: &str) -> ColumnType {
        compile(f, &cols(), &Limits::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .result_type()
    }

    #[test]
    fn arithmetic_follows_precedence_and_is_exact() {
        assert_eq!(run("price * qty"), Value::Decimal(dec("3.3")));
        assert_eq!(run("(price + 0.9) * qty - 1"), Value::Decimal(dec("5")));
        assert_eq!(run("-qty / 2"), Value::Decimal(dec("-1.5")));
        assert_eq!(run("qty - -qty"), Value::Integer(6));
        assert_eq!(run("2 * -(qty + 1)"), Value::Integer(-8));
        assert_eq!(run("10 - 4 - 3"), Value::Integer(3), "left to right");
        assert_eq!(run("12 / 3 / 2"), Value::Decimal(dec("2")), "left to right");
        assert_eq!(run("qty × 2 ÷ 4"), Value::Decimal(dec("1.5")));
    }

    #[test]
    fn nulls_and_division_by_zero_give_null() {
        let mut cells = row();
        cells[0] = Value::Null;
        cells[1] = Value::Integer(0);
        assert_eq!(run_on("price * 2", &cells), Ok(Value::Null));
        assert_eq!(run_on("1 / qty", &cells), Ok(Value::Null));
        assert_eq!(run_on("-price", &cells), Ok(Value::Null));
    }

    #[test]
    fn names_with_spaces_work_bare_or_quoted_and_unknown_ones_are_named() {
        let mut cells = row();
        cells[1] = Value::Integer(2);
        cells[2] = Value::Decimal(dec("5"));
        assert_eq!(
            run_on("unit price * qty", &cells),
            Ok(Value::Decimal(dec("10")))
        );
        assert_eq!(
            run_on("\"unit price\" * qty", &cells),
            Ok(Value::Decimal(dec("10")))
        );
        assert_eq!(
            compile("cost2 * 2", &cols(), &Limits::default()),
            Err(FormulaError::UnknownColumn("cost2".into()))
        );
        for bad in [
            "price *",
            "(price",
            "price)",
            "* price",
            "price price2",
            "()",
            "1.2.3",
        ] {
            assert!(
                matches!(
                    compile(bad, &cols(), &Limits::default()),
                    Err(FormulaError::Syntax(_) | FormulaError::UnknownColumn(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            compile("  ", &cols(), &Limits::default()),
            Err(FormulaError::Empty)
        );
    }

    #[test]
    fn a_text_column_in_a_formula_is_refused_by_name() {
        assert_eq!(
            compile("city * 2", &cols(), &Limits::default()),
            Err(FormulaError::NotNumeric {
                column: "city".into(),
                ty: ColumnType::Text
            })
        );
    }

    #[test]
    fn money_divided_by_a_count_is_money_in_that_currency_to_the_cent() {
        // The example: 28 digits and no currency before.
        assert_eq!(type_of("Revenue / Passengers 2023"), ColumnType::Currency);
        assert_eq!(run("Revenue / Passengers 2023"), money("28.63", "USD"));
        let Value::Currency(m) = run("Revenue / Passengers 2023") else {
            panic!("not money")
        };
        assert_eq!(m.amount.to_string(), "28.63");
        assert_eq!(run("Cost * 2"), money("2000.00", "USD"));
        assert_eq!(run("Revenue - Cost"), money("1233567.89", "USD"));
        assert_eq!(run("Cost / 3").to_string(), "333.33 USD");
    }

    #[test]
    fn money_takes_the_minor_unit_of_its_currency() {
        let mut cells = row();
        cells[6] = money("1000", "JPY");
        assert_eq!(run_on("Cost / 3", &cells), Ok(money("333", "JPY")));
        cells[6] = money("1000", "KWD");
        assert_eq!(run_on("Cost / 3", &cells), Ok(money("333.333", "KWD")));
    }

    #[test]
    fn a_ratio_of_amounts_is_a_plain_decimal() {
        assert_eq!(type_of("Revenue / Cost"), ColumnType::Decimal);
        assert_eq!(run("Revenue / Cost"), Value::Decimal(dec("1234.56789")));
        assert_eq!(type_of("Passengers 2023 / Cost"), ColumnType::Decimal);
        assert_eq!(run("Passengers 2023 / Cost"), Value::Decimal(dec("43.123")));
    }

    #[test]
    fn two_currencies_in_one_calculation_are_an_error_for_that_row() {
        let mut cells = row();
        cells[6] = money("10", "EUR");
        assert_eq!(
            run_on("Revenue + Cost", &cells),
            Err(CellError::Currencies("USD".into(), "EUR".into()))
        );
        assert!(run_on("Revenue / Cost", &cells).is_err());
    }

    #[test]
    fn a_percent_takes_part_as_its_fraction() {
        // The example: 38 % is 0.38, as in every spreadsheet.
        assert_eq!(type_of("qty / (1 + Growth)"), ColumnType::Decimal);
        assert_eq!(
            run("qty / (1 + Growth)"),
            Value::Decimal(dec("2.1739130435"))
        );
        assert_eq!(run("100 * Growth"), Value::Decimal(dec("38")));
        assert_eq!(run("Cost * Growth"), money("380.00", "USD"));
        // Percents with percents stay percents, stored as the number before the % sign.
        assert_eq!(type_of("Growth - Share"), ColumnType::Percent);
        assert_eq!(run("Growth - Share"), Value::Percent(dec("25.5")));
        assert_eq!(run("Growth * Share"), Value::Percent(dec("4.75")));
        assert_eq!(run("-Growth"), Value::Percent(dec("-38")));
        assert_eq!(type_of("Growth / Share"), ColumnType::Decimal);
        assert_eq!(run("Growth / Share"), Value::Decimal(dec("3.04")));
    }

    #[test]
    fn integers_stay_integers_until_divided_and_floats_stay_floats() {
        assert_eq!(type_of("qty * 2 + 1"), ColumnType::Integer);
        assert_eq!(type_of("qty / 2"), ColumnType::Decimal);
        assert_eq!(type_of("qty * 1.5"), ColumnType::Decimal);
        assert_eq!(type_of("ratio * qty"), ColumnType::Float);
        assert_eq!(run("ratio * qty"), Value::Float(1.5));
    }

    #[test]
    fn decimals_are_rounded_to_ten_places_without_trailing_zeros() {
        assert_eq!(run("1 / 3"), Value::Decimal(dec("0.3333333333")));
        assert_eq!(run("2 / 3"), Value::Decimal(dec("0.6666666667")));
        assert_eq!(run("1 / 3 * 3"), Value::Decimal(dec("1")));
        assert_eq!(run("price / 4").to_json(), serde_json::json!("0.275"));
        assert_eq!(run("0 - 1 / 30000000000000"), Value::Decimal(dec("0")));
    }

    #[test]
    fn a_result_too_large_or_a_cell_that_is_not_a_number_is_an_error() {
        let mut cells = row();
        cells[1] = Value::Integer(i64::MAX);
        assert_eq!(run_on("qty * qty", &cells), Err(CellError::Overflow));
        assert_eq!(run_on("qty + 1", &cells), Err(CellError::Overflow));
        cells[1] = Value::Text("many".into());
        assert_eq!(
            run_on("qty + 1", &cells),
            Err(CellError::NotANumber("many".into()))
        );
    }

    #[test]
    fn a_formula_over_the_length_limit_is_refused_before_it_is_read() {
        let limits = Limits {
            max_chars: 20,
            max_depth: 64,
        };
        let at = format!("price{}+ 2", "+1".repeat(6));
        assert_eq!(at.chars().count(), 20);
        assert!(compile(&at, &cols(), &limits).is_ok());
        let past = format!("{at}0");
        assert_eq!(
            compile(&past, &cols(), &limits),
            Err(FormulaError::TooLong { chars: 21, max: 20 })
        );
    }

    #[test]
    fn parentheses_nested_past_the_depth_limit_are_refused() {
        let limits = Limits {
            max_chars: 10_000,
            max_depth: 5,
        };
        let nest = |n: usize| format!("{}price{}", "(".repeat(n), ")".repeat(n));
        assert!(compile(&nest(5), &cols(), &limits).is_ok());
        assert_eq!(
            compile(&nest(6), &cols(), &limits),
            Err(FormulaError::TooDeep { max: 5 })
        );
        // Depth is what is open at once, not how many pairs there are.
        let flat = vec!["(price)"; 100].join("+");
        assert!(compile(&flat, &cols(), &limits).is_ok());
    }

    /// The shapes that overflowed the stack of the recursive parser, evaluator and `Drop`,
    /// with limits opened far past them: they must run in bounded stack, in the test
    /// thread's own 2 MiB.
    #[test]
    fn deep_and_long_formulas_compile_run_and_drop_without_recursion() {
        let limits = Limits {
            max_chars: usize::MAX,
            max_depth: usize::MAX,
        };
        let deep = format!("{}qty{}", "(".repeat(100_000), ")".repeat(100_000));
        let cells = row();
        let f = compile(&deep, &cols(), &limits).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.eval(|i| &cells[i]), Ok(Value::Integer(3)));
        drop(f);

        let long = format!("qty{}", "+1".repeat(200_000));
        let f = compile(&long, &cols(), &limits).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.eval(|i| &cells[i]), Ok(Value::Integer(200_003)));
        drop(f);

        let negated = format!("{}qty", "-".repeat(200_001));
        let f = compile(&negated, &cols(), &limits).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.eval(|i| &cells[i]), Ok(Value::Integer(-3)));
    }
}
