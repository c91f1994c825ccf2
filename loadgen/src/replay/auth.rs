//! Credentials a replay sends in place of the recorded ones (`--auth`): a static header read
//! from a file, or a token each load user obtains by logging in.

use std::collections::HashMap;
use std::path::Path;

use goose::prelude::*;
use serde::Deserialize;
use twinpeak_core::units::InvalidValue;

use super::rewrite::parse_header_line;
use crate::data::Data;
use crate::session::{exchange_body, goose_method, request_builder};
use crate::template::{ExtractPath, RenderContext, Template};

/// How a replay authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `header-file:PATH`: one header line, sent with every request.
    Header(String, String),
    /// `login:SPEC.yaml`: a login request per load user, whose token is sent.
    Login(Box<Login>),
}

/// A login request and what to make of its answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Method of the login request (POST unless given).
    #[serde(default = "post", with = "method")]
    method: http::Method,
    /// Its path.
    path: String,
    /// Its JSON body, if any.
    #[serde(default)]
    json: Option<serde_json::Value>,
    /// Where the token is in the JSON answer (`$.token`).
    extract: ExtractPath,
    /// The header sent with the token, `Authorization: Bearer {{token}}`.
    header: String,
    /// The header's name and value template, from `header`.
    #[serde(skip)]
    parsed: Option<(String, Template)>,
}

fn post() -> http::Method {
    http::Method::POST
}

mod method {
    use serde::{de, Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Method, D::Error> {
        let text = String::deserialize(d)?;
        http::Method::from_bytes(text.to_ascii_uppercase().as_bytes()).map_err(de::Error::custom)
    }
}

/// The credential header a load user sends, kept in its Goose session.
#[derive(Debug, Clone)]
pub struct Credential(pub Option<(String, String)>);

impl Auth {
    /// `header-file:PATH` or `login:SPEC.yaml`.
    pub fn parse(flag: &str) -> Result<Auth, InvalidValue> {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| InvalidValue(format!("--auth {flag}: cannot read {path}: {e}")))
        };
        if let Some(path) = flag.strip_prefix("header-file:") {
            let text = read(path)?;
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let (name, value) =
                parse_header_line(&format!("--auth {path}:"), line).map_err(|_| {
                    InvalidValue(format!(
                        "--auth {flag}: the file's first line is not `Name: value`"
                    ))
                })?;
            return Ok(Auth::Header(name, value));
        }
        if let Some(path) = flag.strip_prefix("login:") {
            return Login::read(Path::new(path), &read(path)?).map(|l| Auth::Login(Box::new(l)));
        }
        Err(InvalidValue(format!(
            "--auth {flag:?}: give header-file:PATH or login:SPEC.yaml"
        )))
    }

    /// In words, without the secret.
    pub fn describe(&self) -> String {
        match self {
            Auth::Header(name, _) => format!("{name} from a file"),
            Auth::Login(login) => format!(
                "{} {} per load user, token {} sent as {}",
                login.method,
                login.path,
                login.extract,
                login.parsed.as_ref().map_or("", |(name, _)| name.as_str())
            ),
        }
    }

    /// The header `user` sends with every request: the static one, or the one its login gave
    /// (`None`, with the reason, when the login failed).
    pub async fn credential(&self, user: &mut GooseUser) -> Result<(String, String), LoginFailed> {
        match self {
            Auth::Header(name, value) => Ok((name.clone(), value.clone())),
            Auth::Login(login) => login.run(user).await.map_err(LoginFailed),
        }
    }
}

/// Why a load user's login gave no credential.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoginFailed(pub String);

impl Login {
    /// Reads a login spec.
    fn read(path: &Path, text: &str) -> Result<Login, InvalidValue> {
        let at = |e: String| InvalidValue(format!("--auth login:{}: {e}", path.display()));
        let mut login: Login = serde_yaml::from_str(text).map_err(|e| at(e.to_string()))?;
        if !login.path.starts_with('/') {
            return Err(at(format!("path {:?} must start with /", login.path)));
        }
        let (name, value) = login
            .header
            .split_once(':')
            .ok_or_else(|| at("header must be `Name: value with {{token}}`".into()))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| at(format!("header name {name:?} is not one")))?;
        let template = Template::parse(value.trim()).map_err(|e| at(e.to_string()))?;
        if let Some(other) = template.variables().find(|v| *v != "token") {
            return Err(at(format!(
                "header reads `{other}`; only {{{{token}}}} is set"
            )));
        }
        goose_method(&login.method)
            .ok_or_else(|| at(format!("method {} cannot be sent", login.method)))?;
        login.parsed = Some((name.as_str().to_owned(), template));
        Ok(login)
    }

    /// Logs `user` in and renders the header with its token.
    async fn run(&self, user: &mut GooseUser) -> Result<(String, String), String> {
        let (name, template) = self.parsed.as_ref().ok_or("login spec not checked")?;
        let mut builder = request_builder(user, &self.method, &self.path)
            .ok_or_else(|| format!("{} {} cannot be sent", self.method, self.path))?;
        if let Some(json) = &self.json {
            builder = builder
                .header("content-type", "application/json")
                .body(json.to_string());
        }
        let (status, _, body) = exchange_body(builder)
            .await
            .map_err(|(status, kind)| format!("{kind:?} (status {status:?})"))?;
        if !(200..300).contains(&status) {
            return Err(format!("{} {} answered {status}", self.method, self.path));
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON: {e}"))?;
        let token = self
            .extract
            .extract(&answer)
            .ok_or_else(|| format!("the answer has no {}", self.extract))?;
        let session = HashMap::from([("token".to_owned(), token)]);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let mut ctx = RenderContext {
            rng: &mut rng,
            data: &Data::default(),
            session: &session,
            today: chrono::Local::now().date_naive(),
        };
        let value = template.render(&mut ctx).map_err(|e| e.to_string())?;
        Ok((name.clone(), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_files_and_login_specs_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let header = dir.path().join("auth.txt");
        std::fs::write(&header, "\nAuthorization: Bearer s3cret\n").unwrap();
        let auth = Auth::parse(&format!("header-file:{}", header.display())).unwrap();
        assert!(
            matches!(&auth, Auth::Header(n, v) if n == "authorization" && v == "Bearer s3cret")
        );
        assert!(!auth.describe().contains("s3cret"));
        let spec = dir.path().join("login.yaml");
        std::fs::write(
            &spec,
            "path: /login\njson: {user: load}\nextract: $.token\nheader: \"Authorization: Bearer {{token}}\"\n",
        )
        .unwrap();
        let auth = Auth::parse(&format!("login:{}", spec.display())).unwrap();
        assert_eq!(
            auth.describe(),
            "POST /login per load user, token $.token sent as authorization"
        );
        std::fs::write(
            &spec,
            "path: /login\nextract: $.token\nheader: \"X: {{other}}\"\n",
        )
        .unwrap();
        let err = Auth::parse(&format!("login:{}", spec.display())).unwrap_err();
        assert!(err.to_string().contains("only {{token}} is set"), "{err}");
        assert!(Auth::parse("basic:me").is_err());
        assert!(Auth::parse("header-file:/nonexistent/file").is_err());
    }
}
