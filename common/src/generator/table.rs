//! A generator from its table in a scenario file (`{ gen = "int", min = 1, max = 9 }`),
//! refusing keys it does not take: one function per generator, and the key readers
//! they share.

use super::{Generator, NAMES};
use crate::value::Arg;

/// Most values a `pick` generator may list.
pub const MAX_PICK_VALUES: usize = 10_000;

impl Generator {
    /// Parse a generator's table.
    ///
    /// # Errors
    /// An unknown generator, a key it does not take, or a setting out of range; the
    /// message says which and what is allowed.
    pub fn from_table(t: &toml::Table) -> Result<Generator, String> {
        let gen = match (t.get("gen"), t.get("from")) {
            (Some(_), Some(_)) => return Err("give either gen or from, not both".into()),
            (None, Some(from)) => return from_column(t, from),
            (Some(g), None) => g
                .as_str()
                .ok_or(format!("gen must be a string, one of: {NAMES}"))?,
            (None, None) => return Err(format!("no generator: add gen = \"…\" (one of: {NAMES})")),
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
            other => Err(format!("unknown generator {other:?}; use one of: {NAMES}")),
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
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.t.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(format!(
                "`{k}` is not a setting of `{}`; it takes: {}",
                self.gen,
                allowed.join(", ")
            )),
        }
    }

    fn int(&self, k: &str) -> Result<Option<i64>, String> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Integer(v)) => Ok(Some(*v)),
            Some(v) => Err(format!("{k} must be an integer, not {v}")),
        }
    }

    fn num(&self, k: &str) -> Result<Option<f64>, String> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Integer(v)) => Ok(Some(*v as f64)),
            Some(toml::Value::Float(v)) if v.is_finite() => Ok(Some(*v)),
            Some(v) => Err(format!("{k} must be a finite number, not {v}")),
        }
    }

    /// A number the generator cannot do without.
    fn need(&self, k: &str) -> Result<f64, String> {
        self.num(k)?.ok_or(format!("`{}` needs {k}", self.gen))
    }

    /// A key of the table (1 and up).
    fn key(&self, k: &str) -> Result<Option<u64>, String> {
        match self.int(k)? {
            Some(v) if v < 1 => Err(format!("{k} = {v}: keys start at 1")),
            v => Ok(v.map(|v| v as u64)),
        }
    }
}

fn from_column(t: &toml::Table, from: &toml::Value) -> Result<Generator, String> {
    let column = from
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or("from must name a column, e.g. from = \"id\"")?;
    Keys { t, gen: "from" }.only(&["from"])?;
    Ok(Generator::From {
        column: column.to_string(),
    })
}

fn int(t: &Keys<'_>) -> Result<Generator, String> {
    t.only(&["gen", "min", "max"])?;
    let (min, max) = (
        t.int("min")?.ok_or("`int` needs min and max")?,
        t.int("max")?.ok_or("`int` needs min and max")?,
    );
    if min > max {
        return Err(format!("min {min} is above max {max}"));
    }
    Ok(Generator::Int { min, max })
}

fn float(t: &Keys<'_>) -> Result<Generator, String> {
    t.only(&["gen", "min", "max"])?;
    let (min, max) = (t.need("min")?, t.need("max")?);
    if min >= max {
        return Err(format!("min {min} must be below max {max}"));
    }
    Ok(Generator::Float { min, max })
}

fn zipf(t: &Keys<'_>) -> Result<Generator, String> {
    t.only(&["gen", "s", "min", "max"])?;
    let s = t.num("s")?.unwrap_or(0.99);
    if !(0.0..=10.0).contains(&s) || s == 0.0 {
        return Err(format!(
            "s = {s}: the skew must be above 0 and at most 10 (YCSB uses 0.99)"
        ));
    }
    let range = match (t.key("min")?, t.key("max")?) {
        (None, None) => None,
        (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
        (Some(lo), Some(hi)) => return Err(format!("min {lo} is above max {hi}")),
        _ => return Err("give both min and max, or neither (then the worker's shard)".into()),
    };
    Ok(Generator::Zipf {
        s,
        range,
        scrambled: t.gen == "scrambled_zipf",
    })
}

fn sequence(t: &Keys<'_>) -> Result<Generator, String> {
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
                return Err(format!(
                    "above_max = {v}: name a table and its column, e.g. above_max = \"orders.id\""
                ));
            }
            Some((table.to_string(), column.to_string()))
        }
    };
    Ok(Generator::Sequence { start, above_max })
}

fn normal(t: &Keys<'_>) -> Result<Generator, String> {
    t.only(&["gen", "mean", "stddev", "min", "max", "decimals"])?;
    let mean = t.need("mean")?;
    let stddev = t.need("stddev")?;
    if stddev < 0.0 {
        return Err(format!("stddev {stddev} is negative"));
    }
    let (min, max) = (t.num("min")?, t.num("max")?);
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(format!("min {lo} is above max {hi}"));
        }
    }
    let decimals = match t.int("decimals")? {
        None => None,
        Some(d) if (0..=15).contains(&d) => Some(d as u32),
        Some(d) => return Err(format!("decimals = {d}: between 0 and 15")),
    };
    Ok(Generator::Normal {
        mean,
        stddev,
        min,
        max,
        decimals,
    })
}

fn text(t: &Keys<'_>) -> Result<Generator, String> {
    t.only(&["gen", "len", "min_len", "max_len"])?;
    let bound = |k: &str| -> Result<Option<u32>, String> {
        match t.int(k)? {
            None => Ok(None),
            Some(v) if (0..=1_000_000).contains(&v) => Ok(Some(v as u32)),
            Some(v) => Err(format!("{k} = {v}: between 0 and 1000000")),
        }
    };
    let (min_len, max_len) = match (bound("len")?, bound("min_len")?, bound("max_len")?) {
        (Some(n), None, None) => (n, n),
        (None, Some(lo), Some(hi)) if lo <= hi => (lo, hi),
        (None, Some(lo), Some(hi)) => return Err(format!("min_len {lo} is above max_len {hi}")),
        _ => return Err("give len, or min_len and max_len".into()),
    };
    Ok(Generator::Text { min_len, max_len })
}

fn pick(t: &Keys<'_>) -> Result<Generator, String> {
    t.only(&["gen", "values", "weights"])?;
    let values =
        t.t.get("values")
            .and_then(toml::Value::as_array)
            .filter(|v| !v.is_empty())
            .ok_or("`pick` needs values = [ … ] with at least one value")?;
    if values.len() > MAX_PICK_VALUES {
        return Err(format!("more than {MAX_PICK_VALUES} values"));
    }
    let values = values
        .iter()
        .map(|v| match v {
            toml::Value::Integer(i) => Ok(Arg::Int(*i)),
            toml::Value::Float(f) if f.is_finite() => Ok(Arg::Real(*f)),
            toml::Value::String(s) => Ok(Arg::Text(s.clone())),
            other => Err(format!("value {other} is not a string or a number")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let weights: Vec<u64> = match t.t.get("weights") {
        None => vec![1; values.len()],
        Some(toml::Value::Array(ws)) => ws
            .iter()
            .map(|w| match w {
                toml::Value::Integer(i) if (0..=1_000_000).contains(i) => Ok(*i as u64),
                other => Err(format!("weight {other} is not an integer in 0..=1000000")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("weights must be a list of integers, not {other}")),
    };
    if weights.len() != values.len() {
        return Err(format!(
            "{} weights for {} values: give one weight per value",
            weights.len(),
            values.len()
        ));
    }
    if weights.iter().all(|w| *w == 0) {
        return Err("every weight is 0".into());
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
