//! Data variables: the values a template's `{{name}}` draws from, written inline in the scenario or
//! read from a CSV file beside it, and resolved once at load time so no file is read during a run.

use std::collections::BTreeMap;
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
        enum Raw {
            List(Vec<Scalar>),
            File(String),
        }
        let expected = "expected a list of values such as [mumbai, delhi] \
                        or a CSV file such as data/cities.csv or data/services.csv#service";
        match Raw::deserialize(deserializer).map_err(|_| de::Error::custom(expected))? {
            Raw::List(values) if values.is_empty() => {
                Err(de::Error::custom("has no values: list at least one"))
            }
            Raw::List(values) => Ok(DataSource::List(
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
            Raw::File(text) => {
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
        }
    }
}

/// The values of every data variable, resolved from their sources; each is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Data {
    values: BTreeMap<String, Vec<String>>,
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
        for (name, source) in sources {
            let fail = |message: String| DataError {
                key: format!("data.{name}"),
                message,
            };
            let list = match source {
                DataSource::List(list) => list.clone(),
                DataSource::Csv { file, column } => {
                    read_column(&base_dir.join(file), file, column.as_deref()).map_err(fail)?
                }
            };
            if list.is_empty() {
                return Err(fail("has no values".into()));
            }
            values.insert(name.clone(), list);
        }
        Ok(Data { values })
    }

    /// Data given directly, for callers that build a scenario in code; empty lists are dropped.
    pub fn from_values(values: impl IntoIterator<Item = (String, Vec<String>)>) -> Data {
        Data {
            values: values.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
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
}
