//! A generator from its table in a scenario file (`{ gen = "int", min = 1, max = 9 }`),
//! refusing keys it does not take: one function per generator, and the key readers
//! they share.

use super::{Generator, NAMES};
use crate::value::Arg;

/// Most values a `pick` generator may list.
pub const MAX_PICK_VALUES: usize = 10_000;

/// What is wrong with a generator's table; each says what is allowed instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeneratorError {
    #[error("give either gen or from, not both")]
    GenAndFrom,
    #[error("gen must be a string, one of: {NAMES}")]
    GenNotAString,
    #[error("no generator: add gen = \"…\" (one of: {NAMES})")]
    NoGenerator,
    #[error("unknown generator {0:?}; use one of: {NAMES}")]
    Unknown(String),
    #[error("`{key}` is not a setting of `{gen}`; it takes: {takes}")]
    NotASetting {
        key: String,
        gen: String,
        takes: String,
    },
    #[error("{key} must be an integer, not {value}")]
    NotAnInteger { key: &'static str, value: String },
    #[error("{key} must be a finite number, not {value}")]
    NotANumber { key: &'static str, value: String },
    #[error("`{gen}` needs {what}")]
    Needs { gen: String, what: &'static str },
    #[error("{key} = {value}: keys start at 1")]
    KeyBelowOne { key: &'static str, value: i64 },
    #[error("{key} = {value}: between {lo} and {hi}")]
    OutOfRange {
        key: &'static str,
        value: i64,
        lo: i64,
        hi: i64,
    },
    #[error("from must name a column, e.g. from = \"id\"")]
    FromNotAColumn,
    #[error("{lo_key} {lo} is above {hi_key} {hi}")]
    AboveMax {
        lo_key: &'static str,
        lo: String,
        hi_key: &'static str,
        hi: String,
    },
    #[error("min {min} must be below max {max}")]
    NotBelow { min: f64, max: f64 },
    #[error("s = {0}: the skew must be above 0 and at most 10 (YCSB uses 0.99)")]
    Skew(f64),
    #[error("give both min and max, or neither (then the worker's shard)")]
    HalfRange,
    #[error("above_max = {0}: name a table and its column, e.g. above_max = \"orders.id\"")]
    AboveMaxColumn(String),
    #[error("stddev {0} is negative")]
    NegativeStddev(f64),
    #[error("give len, or min_len and max_len")]
    LenOrBounds,
    #[error("`pick` needs values = [ … ] with at least one value")]
    PickNeedsValues,
    #[error("more than {MAX_PICK_VALUES} values")]
    TooManyValues,
    #[error("value {0} is not a string or a number")]
    BadValue(String),
    #[error("weight {0} is not an integer in 0..=1000000")]
    BadWeight(String),
    #[error("weights must be a list of integers, not {0}")]
    WeightsNotAList(String),
    #[error("{weights} weights for {values} values: give one weight per value")]
    WeightCount { weights: usize, values: usize },
    #[error("every weight is 0")]
    AllWeightsZero,
}

use GeneratorError as E;

impl Generator {
    /// Parse a generator's table.
    ///
    /// # Errors
    /// An unknown generator, a key it does not take, or a setting out of range; the
    /// message says which and what is allowed.
    pub fn from_table(t: &toml::Table) -> Result<Generator, GeneratorError> {
        let gen = match (t.get("gen"), t.get("from")) {
            (Some(_), Some(_)) => return Err(E::GenAndFrom),
            (None, Some(from)) => return from_column(t, from),
            (Some(g), None) => g.as_str().ok_or(E::GenNotAString)?,
            (None, None) => return Err(E::NoGenerator),
        };
        let t = Keys { t, gen };
        match gen {
            "int" => int(&t),
            "float" => float(&t),
            "shard" => t.only(&["gen"]).map(|()| Generator::Shard),
            "zipf" | "scrambled_zipf" => zipf(&t),
            "sequence" => sequence(&t),
            "normal" => normal(&t),
            "string" => text(&t),
            "pick" => pick(&t),
            "now" => t.only(&["gen"]).map(|()| Generator::Now),
            "row" => t.only(&["gen"]).map(|()| Generator::Row),
            other => Err(E::Unknown(other.to_string())),
        }
    }
}

/// A generator's table and its name, with typed readers of its keys.
struct Keys<'a> {
    t: &'a toml::Table,
    gen: &'a str,
}

impl Keys<'_> {
    /// Refuse keys the generator does not take, naming the ones it does.
    fn only(&self, allowed: &[&str]) -> Result<(), GeneratorError> {
        match self.t.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(E::NotASetting {
                key: k.clone(),
                gen: self.gen.to_string(),
                takes: allowed.join(", "),
            }),
        }
    }

    fn int(&self, k: &'static str) -> Result<Option<i64>, GeneratorError> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Integer(v)) => Ok(Some(*v)),
            Some(v) => Err(E::NotAnInteger {
                key: k,
                value: v.to_string(),
            }),
        }
    }

    fn num(&self, k: &'static str) -> Result<Option<f64>, GeneratorError> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Integer(v)) => Ok(Some(*v as f64)),
            Some(toml::Value::Float(v)) if v.is_finite() => Ok(Some(*v)),
            Some(v) => Err(E::NotANumber {
                key: k,
                value: v.to_string(),
            }),
        }
    }

    /// A number the generator cannot do without.
    fn need(&self, k: &'static str) -> Result<f64, GeneratorError> {
        self.num(k)?.ok_or_else(|| E::Needs {
            gen: self.gen.to_string(),
            what: k,
        })
    }

    /// A key of the table (1 and up).
    fn key(&self, k: &'static str) -> Result<Option<u64>, GeneratorError> {
        match self.int(k)? {
            Some(v) if v < 1 => Err(E::KeyBelowOne { key: k, value: v }),
            v => Ok(v.map(|v| v as u64)),
        }
    }
}

/// `min {lo} is above max {hi}` for any pair of bounds.
fn above(
    lo_key: &'static str,
    lo: impl ToString,
    hi_key: &'static str,
    hi: impl ToString,
) -> GeneratorError {
    E::AboveMax {
        lo_key,
        lo: lo.to_string(),
        hi_key,
        hi: hi.to_string(),
    }
}

fn from_column(t: &toml::Table, from: &toml::Value) -> Result<Generator, GeneratorError> {
    let column = from
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or(E::FromNotAColumn)?;
    Keys { t, gen: "from" }.only(&["from"])?;
    Ok(Generator::From {
        column: column.to_string(),
    })
}

fn int(t: &Keys<'_>) -> Result<Generator, GeneratorError> {
    t.only(&["gen", "min", "max"])?;
    let needs = || E::Needs {
        gen: "int".into(),
        what: "min and max",
    };
    let (min, max) = (
        t.int("min")?.ok_or_else(needs)?,
        t.int("max")?.ok_or_else(needs)?,
    );
    if min > max {
        return Err(above("min", min, "max", max));
    }
    Ok(Generator::Int { min, max })
}

fn float(t: &Keys<'_>) -> Result<Generator, GeneratorError> {
    t.only(&["gen", "min", "max"])?;
    let (min, max) = (t.need("min")?, t.need("max")?);
    if min >= max {
        return Err(E::NotBelow { min, max });
    }
    Ok(Generator::Float { min, max })
}

fn zipf(t: &Keys<'_>) -> Result<Generator, GeneratorError> {
    t.only(&["gen", "s", "min", "max"])?;
    let s = t.num("s")?.unwrap_or(0.99);
    if !(0.0..=10.0).contains(&s) || s == 0.0 {
        return Err(E::Skew(s));
    }
    let range = match (t.key("min")?, t.key("max")?) {
        (None, None) => None,
        (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
        (Some(lo), Some(hi)) => return Err(above("min", lo, "max", hi)),
        _ => return Err(E::HalfRange),
    };
    Ok(Generator::Zipf {
        s,
        range,
        scrambled: t.gen == "scrambled_zipf",
    })
}

fn sequence(t: &Keys<'_>) -> Result<Generator, GeneratorError> {
    t.only(&["gen", "start", "above_max"])?;
    let start = t.key("start")?.unwrap_or(1);
    let above_max = match t.t.get("above_max") {
        None => None,
        Some(v) => {
            let s = v.as_str().unwrap_or_default();
            let (table, column) = s.split_once('.').unwrap_or(("", ""));
            let ident = |x: &str| {
                !x.is_empty()
                    && x.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if !ident(table) || !ident(column) {
                return Err(E::AboveMaxColumn(v.to_string()));
            }
            Some((table.to_string(), column.to_string()))
        }
    };
    Ok(Generator::Sequence { start, above_max })
}

fn normal(t: &Keys<'_>) -> Result<Generator, GeneratorError> {
    t.only(&["gen", "mean", "stddev", "min", "max", "decimals"])?;
    let mean = t.need("mean")?;
    let stddev = t.need("stddev")?;
    if stddev < 0.0 {
        return Err(E::NegativeStddev(stddev));
    }
    let (min, max) = (t.num("min")?, t.num("max")?);
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(above("min", lo, "max", hi));
        }
    }
    let decimals = match t.int("decimals")? {
        None => None,
        Some(d) if (0..=15).contains(&d) => Some(d as u32),
        Some(d) => {
            return Err(E::OutOfRange {
                key: "decimals",
                value: d,
                lo: 0,
                hi: 15,
            })
        }
    };
    Ok(Generator::Normal {
        mean,
        stddev,
        min,
        max,
        decimals,
    })
}

fn text(t: &Keys<'_>) -> Result<Generator, GeneratorError> {
    t.only(&["gen", "len", "min_len", "max_len"])?;
    let bound = |k: &'static str| -> Result<Option<u32>, GeneratorError> {
        match t.int(k)? {
            None => Ok(None),
            Some(v) if (0..=1_000_000).contains(&v) => Ok(Some(v as u32)),
            Some(v) => Err(E::OutOfRange {
                key: k,
                value: v,
                lo: 0,
                hi: 1_000_000,
            }),
        }
    };
    let (min_len, max_len) = match (bound("len")?, bound("min_len")?, bound("max_len")?) {
        (Some(n), None, None) => (n, n),
        (None, Some(lo), Some(hi)) if lo <= hi => (lo, hi),
        (None, Some(lo), Some(hi)) => return Err(above("min_len", lo, "max_len", hi)),
        _ => return Err(E::LenOrBounds),
    };
    Ok(Generator::Text { min_len, max_len })
}

fn pick(t: &Keys<'_>) -> Result<Generator, GeneratorError> {
    t.only(&["gen", "values", "weights"])?;
    let values =
        t.t.get("values")
            .and_then(toml::Value::as_array)
            .filter(|v| !v.is_empty())
            .ok_or(E::PickNeedsValues)?;
    if values.len() > MAX_PICK_VALUES {
        return Err(E::TooManyValues);
    }
    let values = values
        .iter()
        .map(|v| match v {
            toml::Value::Integer(i) => Ok(Arg::Int(*i)),
            toml::Value::Float(f) if f.is_finite() => Ok(Arg::Real(*f)),
            toml::Value::String(s) => Ok(Arg::Text(s.clone())),
            other => Err(E::BadValue(other.to_string())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let weights: Vec<u64> = match t.t.get("weights") {
        None => vec![1; values.len()],
        Some(toml::Value::Array(ws)) => ws
            .iter()
            .map(|w| match w {
                toml::Value::Integer(i) if (0..=1_000_000).contains(i) => Ok(*i as u64),
                other => Err(E::BadWeight(other.to_string())),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(E::WeightsNotAList(other.to_string())),
    };
    if weights.len() != values.len() {
        return Err(E::WeightCount {
            weights: weights.len(),
            values: values.len(),
        });
    }
    if weights.iter().all(|w| *w == 0) {
        return Err(E::AllWeightsZero);
    }
    let cumulative = weights
        .iter()
        .scan(0u64, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect();
    Ok(Generator::Pick { values, cumulative })
}
