//! Data variables: the values a template's `{{name}}` draws from, written inline in the scenario or
//! read from a CSV file beside it, and resolved once at load time so no file is read during a run.
//!
//! A variable written `{split: SOURCE}` holds values only one load worker may use (accounts
//! that log in, seats to book): spread over N workers, worker K draws from the values whose
//! position `i` (from 0, in the order written or read) has `i mod N == K`, so no two workers
//! use one value. Other variables are drawn from whole on every worker, as one machine would.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rand::seq::IndexedRandom;
use rand::Rng;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Where a data variable's values come from, as written under `data:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// Values written inline: `city: [mumbai, delhi]` (numbers and booleans are kept as text).
    List(Vec<String>),
    /// A CSV file with a header row, relative to the scenario's directory: `data/services.csv`
    /// takes the first column, `data/services.csv#duration_minutes` the named one.
    Csv {
        /// The file as written in the scenario.
        file: PathBuf,
        /// The column named after `#`; the first column when absent.
        column: Option<String>,
    },
    /// `{split: SOURCE}`: values each load worker of a run takes its own share of.
    Split(Box<DataSource>),
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Integer(i64),
            Number(f64),
            Bool(bool),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Plain {
            List(Vec<Scalar>),
            File(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Plain(Plain),
            Split { split: Plain },
        }
        let expected = "expected a list of values such as [mumbai, delhi], \
                        a CSV file such as data/cities.csv or data/services.csv#service, \
                        or either under `split:`";
        let plain = |raw: Plain| match raw {
            Plain::List(values) if values.is_empty() => {
                Err(de::Error::custom("has no values: list at least one"))
            }
            Plain::List(values) => Ok(DataSource::List(
                values
                    .into_iter()
                    .map(|v| match v {
                        Scalar::Text(t) => t,
                        Scalar::Integer(n) => n.to_string(),
                        Scalar::Number(n) => n.to_string(),
                        Scalar::Bool(b) => b.to_string(),
                    })
                    .collect(),
            )),
            Plain::File(text) => {
                let (file, column) = match text.split_once('#') {
                    Some((file, column)) => (file.trim(), Some(column.trim())),
                    None => (text.trim(), None),
                };
                if !file.to_ascii_lowercase().ends_with(".csv") {
                    return Err(de::Error::custom(format!("{expected}, got {text:?}")));
                }
                if column == Some("") {
                    return Err(de::Error::custom(format!(
                        "{text:?} names no column after `#`"
                    )));
                }
                Ok(DataSource::Csv {
                    file: PathBuf::from(file),
                    column: column.map(str::to_string),
                })
            }
        };
        match Raw::deserialize(deserializer).map_err(|_| de::Error::custom(expected))? {
            Raw::Plain(raw) => plain(raw),
            Raw::Split { split } => Ok(DataSource::Split(Box::new(plain(split)?))),
        }
    }
}

impl Serialize for DataSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DataSource::List(values) => values.serialize(serializer),
            DataSource::Csv { file, column } => match column {
                Some(column) => {
                    serializer.collect_str(&format_args!("{}#{column}", file.display()))
                }
                None => serializer.collect_str(&file.display()),
            },
            DataSource::Split(source) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("split", source)?;
                map.end()
            }
        }
    }
}

/// The values of every data variable, resolved from their sources; each is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Data {
    values: BTreeMap<String, Vec<String>>,
    /// The variables written `{split: …}`.
    split: BTreeSet<String>,
}

/// A data variable that could not be resolved: the dotted key at fault (`data.service`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// The dotted key of the variable, `data.NAME`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for DataError {}

impl Data {
    /// Resolves every source; CSV files are read relative to `base_dir` (the scenario's
    /// directory). A missing file, a missing column or a source with no values is an error.
    pub fn resolve(
        sources: &BTreeMap<String, DataSource>,
        base_dir: &Path,
    ) -> Result<Data, DataError> {
        let mut values = BTreeMap::new();
        let mut split = BTreeSet::new();
        for (name, source) in sources {
            let fail = |message: String| DataError {
                key: format!("data.{name}"),
                message,
            };
            let (source, is_split) = match source {
                DataSource::Split(inner) => (inner.as_ref(), true),
                plain => (plain, false),
            };
            let list = match source {
                DataSource::List(list) => list.clone(),
                DataSource::Csv { file, column } => {
                    read_column(&base_dir.join(file), file, column.as_deref()).map_err(fail)?
                }
                DataSource::Split(_) => return Err(fail("`split:` holds a list or a file".into())),
            };
            if list.is_empty() {
                return Err(fail("has no values".into()));
            }
            if is_split {
                split.insert(name.clone());
            }
            values.insert(name.clone(), list);
        }
        Ok(Data { values, split })
    }

    /// The data load worker `index` of `count` draws from: its own share of every variable
    /// written `{split: …}` (the values at positions `i` with `i mod count == index`), every
    /// other variable whole. Fails naming the first split variable with fewer values than
    /// workers, which would leave a worker without any.
    pub fn share(&self, index: usize, count: usize) -> Result<Data, DataError> {
        let mut shared = self.clone();
        for name in &self.split {
            let values = shared.values.entry(name.clone()).or_default();
            if values.len() < count {
                return Err(DataError {
                    key: format!("data.{name}"),
                    message: format!(
                        "{} value(s) split over {count} load workers leave some without any",
                        values.len()
                    ),
                });
            }
            *values = values
                .iter()
                .skip(index)
                .step_by(count.max(1))
                .cloned()
                .collect();
        }
        Ok(shared)
    }

    /// The variables written `{split: …}`, in order.
    pub fn split_names(&self) -> impl Iterator<Item = &str> {
        self.split.iter().map(String::as_str)
    }

    /// Data given directly, for callers that build a scenario in code; empty lists are dropped.
    pub fn from_values(values: impl IntoIterator<Item = (String, Vec<String>)>) -> Data {
        Data {
            values: values.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
            split: BTreeSet::new(),
        }
    }

    /// The values of a variable, if it is a data variable.
    pub fn values(&self, name: &str) -> Option<&[String]> {
        self.values.get(name).map(Vec::as_slice)
    }

    /// Whether `name` is a data variable.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// One of the variable's values, drawn uniformly.
    pub fn choose<R: Rng + ?Sized>(&self, name: &str, rng: &mut R) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.choose(rng))
            .map(String::as_str)
    }

    /// The names of the data variables, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// Reads one column of a CSV file with a header row; blank cells are skipped.
fn read_column(path: &Path, written: &Path, column: Option<&str>) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| {
            format!(
                "cannot read {}: {}",
                written.display(),
                csv_reason(&e, path)
            )
        })?;
    let headers = reader
        .headers()
        .map_err(|e| format!("cannot read {}: {e}", written.display()))?
        .clone();
    let index = match column {
        None if headers.is_empty() => {
            return Err(format!("{} has no header row", written.display()))
        }
        None => 0,
        Some(name) => headers.iter().position(|h| h == name).ok_or_else(|| {
            let known: Vec<&str> = headers.iter().collect();
            format!(
                "{} has no column {name:?} (its columns: {})",
                written.display(),
                known.join(", ")
            )
        })?,
    };
    let mut values = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("cannot read {}: {e}", written.display()))?;
        if let Some(value) = record.get(index).filter(|v| !v.is_empty()) {
            values.push(value.to_string());
        }
    }
    if values.is_empty() {
        return Err(format!(
            "{} has no values in column {:?}",
            written.display(),
            headers.get(index).unwrap_or_default()
        ));
    }
    Ok(values)
}

/// An I/O error names the resolved path, so a wrong base directory is easy to see.
fn csv_reason(error: &csv::Error, path: &Path) -> String {
    match error.kind() {
        csv::ErrorKind::Io(io) => format!("{io} ({})", path.display()),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn source(yaml: &str) -> Result<DataSource, serde_yaml::Error> {
        serde_yaml::from_str(yaml)
    }

    #[test]
    fn sources_parse_lists_and_files() {
        assert_eq!(
            source("[mumbai, 7, true]").unwrap(),
            DataSource::List(vec!["mumbai".into(), "7".into(), "true".into()])
        );
        assert_eq!(
            source("data/services.csv").unwrap(),
            DataSource::Csv {
                file: "data/services.csv".into(),
                column: None
            }
        );
        assert_eq!(
            source("data/services.csv#duration_minutes").unwrap(),
            DataSource::Csv {
                file: "data/services.csv".into(),
                column: Some("duration_minutes".into())
            }
        );
        assert!(source("[]").is_err());
        assert!(source("mumbai").is_err());
        assert!(source("data/x.csv#").is_err());
        let again = serde_yaml::to_string(&source("data/s.csv#b").unwrap()).unwrap();
        assert_eq!(again.trim(), "data/s.csv#b");
    }

    #[test]
    fn csv_columns_resolve_relative_to_the_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(
            dir.path().join("data/s.csv"),
            "service,minutes\nhaircut,30\n,45\nmassage, 60\n",
        )
        .unwrap();
        let sources = BTreeMap::from([
            ("service".to_string(), source("data/s.csv").unwrap()),
            ("minutes".to_string(), source("data/s.csv#minutes").unwrap()),
            ("city".to_string(), source("[pune]").unwrap()),
        ]);
        let data = Data::resolve(&sources, dir.path()).unwrap();
        assert_eq!(data.values("service").unwrap(), ["haircut", "massage"]);
        assert_eq!(data.values("minutes").unwrap(), ["30", "45", "60"]);
        assert_eq!(
            data.names().collect::<Vec<_>>(),
            ["city", "minutes", "service"]
        );
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(data.choose("city", &mut rng), Some("pune"));
        assert_eq!(data.choose("nope", &mut rng), None);
    }

    #[test]
    fn missing_file_column_or_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.csv"), "service\n").unwrap();
        let resolve = |yaml: &str| {
            let sources = BTreeMap::from([("service".to_string(), source(yaml).unwrap())]);
            Data::resolve(&sources, dir.path()).unwrap_err()
        };
        let e = resolve("missing.csv");
        assert_eq!(e.key, "data.service");
        assert!(e.message.starts_with("cannot read missing.csv"), "{e}");
        let e = resolve("empty.csv#minutes");
        assert!(e.message.contains("no column \"minutes\""), "{e}");
        let e = resolve("empty.csv");
        assert!(e.message.contains("no values"), "{e}");
    }

    #[test]
    fn split_variables_give_each_worker_its_own_values() {
        let split = source("{split: [a, b, c, d, e]}").unwrap();
        assert_eq!(
            split,
            DataSource::Split(Box::new(DataSource::List(
                ["a", "b", "c", "d", "e"].map(String::from).to_vec()
            )))
        );
        assert_eq!(
            serde_yaml::to_string(&split).unwrap(),
            "split:\n- a\n- b\n- c\n- d\n- e\n"
        );
        let sources = BTreeMap::from([
            ("seat".to_owned(), split),
            ("city".to_owned(), source("[x, y]").unwrap()),
        ]);
        let data = Data::resolve(&sources, Path::new(".")).unwrap();
        let shares: Vec<_> = (0..2).map(|k| data.share(k, 2).unwrap()).collect();
        assert_eq!(shares[0].values("seat").unwrap(), ["a", "c", "e"]);
        assert_eq!(shares[1].values("seat").unwrap(), ["b", "d"]);
        assert_eq!(
            shares[1].values("city").unwrap(),
            ["x", "y"],
            "not split: whole"
        );
        let err = data.share(0, 6).unwrap_err();
        assert_eq!(err.key, "data.seat");
        assert!(err.message.contains("5 value(s) split over 6"), "{err}");
        assert!(source("{split: nope}").is_err());
    }
}
