//! Secret names (query parameters, form fields, JSON keys) and the `name=value&...` syntax of
//! query strings and `application/x-www-form-urlencoded` bodies.
//!
//! A name is secret when one of the configured names occurs in it as whole words: names are cut
//! into lower-case words at anything not a letter or digit, at lower-to-upper case changes and
//! between letters and digits (`X-Amz-Signature` → `x amz signature`, `accessToken` → `access
//! token`), so `key` catches `api_key` and `apiKey` but not `keyword`, and `auth` catches
//! `auth_code` but not `author`. This is how Sentry's and Datadog's scrubbers pick secrets: by
//! the words a name is made of, with a list of well-known ones by default.

use std::borrow::Cow;

use aho_corasick::{packed, AhoCorasick};
use percent_encoding::percent_decode;

use super::REDACTED;

/// Names whose values are always redacted (the defaults of `diff.redact_params`' list):
/// passwords, tokens, keys, signatures and sessions, as Sentry's and Datadog's scrubbers
/// choose them.
pub const DEFAULT_SECRET_PARAMS: [&str; 25] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "key",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "sid",
    "jsessionid",
    "phpsessid",
    "signature",
    "sig",
    "csrf",
    "xsrf",
    "jwt",
    "otp",
];

/// A list of secret names, each kept as its words.
#[derive(Debug, Clone)]
pub struct SecretNames {
    names: Vec<Vec<String>>,
    /// The names of one word, by their length, to look each word of a name up in.
    single: Vec<Vec<String>>,
    /// Finds, in lower-cased ASCII text, a word that every ASCII name has (so no other name's
    /// words can be found where it is not).
    ascii_words: WordSearch,
}

/// A search for a few exact words: vectorized (Teddy) where the processor allows, an
/// automaton read byte by byte otherwise.
#[derive(Debug, Clone)]
struct WordSearch {
    vectorized: Option<packed::Searcher>,
    automaton: AhoCorasick,
}

impl WordSearch {
    fn new(words: &[&str]) -> Self {
        WordSearch {
            vectorized: packed::Searcher::new(words),
            automaton: AhoCorasick::new(words).expect("a few short words always build a searcher"),
        }
    }

    fn is_match(&self, text: &[u8]) -> bool {
        match &self.vectorized {
            Some(searcher) => searcher.find(text).is_some(),
            None => self.automaton.is_match(text),
        }
    }
}

/// Why a form body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable(pub &'static str);

impl SecretNames {
    /// The defaults and `extra`.
    pub fn new<'a>(extra: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<Vec<String>> = Vec::new();
        for name in DEFAULT_SECRET_PARAMS.into_iter().chain(extra) {
            let name = words(name);
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        let mut single: Vec<Vec<String>> = Vec::new();
        for word in names.iter().filter(|words| words.len() == 1).map(|w| &w[0]) {
            if single.len() <= word.len() {
                single.resize(word.len() + 1, Vec::new());
            }
            single[word.len()].push(word.clone());
        }
        let ascii_words = ascii_prefilter(&names);
        SecretNames {
            names,
            single,
            ascii_words,
        }
    }

    /// Whether `text` may hold a name that is secret: false only when it is ASCII, has no
    /// `\u` escape and holds, in any case, none of the secret names' words anywhere. Every word
    /// of an ASCII name, and of a JSON key without `\u` escapes, is a run of the text's own
    /// bytes, so a false answer is certain; the check reads the text once, far faster than
    /// parsing it.
    pub fn may_occur_in(&self, text: &[u8]) -> bool {
        // The words are searched for in a lower-cased copy: a search that ignores case walks
        // an automaton byte by byte, while one for a few exact words is a vectorized scan.
        !text.is_ascii()
            || memchr::memmem::find(text, b"\\u").is_some()
            || self.ascii_words.is_match(&text.to_ascii_lowercase())
    }

    /// Whether values under this name are secret.
    pub fn is_secret(&self, name: &str) -> bool {
        if let Some(ascii) = AsciiWords::of(name) {
            let single = (0..ascii.count).any(|i| {
                let word = ascii.word(i);
                self.single
                    .get(word.len())
                    .is_some_and(|same| same.iter().any(|s| s.as_bytes() == word))
            });
            return single
                || self
                    .names
                    .iter()
                    .filter(|secret| secret.len() > 1)
                    .any(|secret| ascii.contains(secret));
        }
        let words = words(name);
        self.names.iter().any(|secret| {
            words
                .windows(secret.len())
                .any(|window| window == secret.as_slice())
        })
    }

    /// A query string with the values of secret parameters replaced. A name that does not
    /// decode is taken as secret.
    pub fn query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        self.pairs(query, '&', false)
            .unwrap_or_else(|_| Cow::Owned(REDACTED.to_string()))
    }

    /// A path with the values of secret path parameters (`/cart;jsessionid=S/items`, the
    /// `;name=value` pairs of a segment) replaced.
    pub fn path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if !path.contains(';') {
            return Cow::Borrowed(path);
        }
        let mut out: Option<String> = None;
        let mut start = 0;
        for segment in path.split('/') {
            let redacted = match segment.split_once(';') {
                Some((head, params)) => match self.pairs(params, ';', false) {
                    Ok(Cow::Borrowed(_)) => None,
                    Ok(Cow::Owned(params)) => Some(format!("{head};{params}")),
                    Err(_) => Some(format!("{head};{REDACTED}")),
                },
                None => None,
            };
            match redacted {
                Some(redacted) => {
                    let out = out.get_or_insert_with(|| path[..start].to_string());
                    out.push_str(&redacted);
                }
                None => {
                    if let Some(out) = &mut out {
                        out.push_str(segment);
                    }
                }
            }
            start += segment.len() + 1;
            if let Some(out) = &mut out {
                if start <= path.len() {
                    out.push('/');
                }
            }
        }
        out.map_or(Cow::Borrowed(path), Cow::Owned)
    }

    /// An `application/x-www-form-urlencoded` body with the values of secret fields replaced;
    /// an error when a name or value does not decode (a bad `%` escape, or not UTF-8).
    pub fn form<'a>(&self, form: &'a str) -> Result<Cow<'a, str>, Undecodable> {
        self.pairs(form, '&', true)
    }

    /// `text`'s `name=value` pairs, separated by `separator`, secret values replaced.
    fn pairs<'a>(
        &self,
        text: &'a str,
        separator: char,
        strict: bool,
    ) -> Result<Cow<'a, str>, Undecodable> {
        let mut out: Option<String> = None;
        let mut start = 0;
        for piece in text.split(separator) {
            let (name, value) = match piece.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (piece, None),
            };
            let decoded = decode(name);
            if strict {
                decoded.as_ref().map_err(|e| e.clone())?;
                if let Some(value) = value {
                    decode(value)?;
                }
            }
            let secret = value.is_some_and(|v| !v.is_empty())
                && decoded.map_or(true, |name| self.is_secret(&name));
            if secret {
                let out = out.get_or_insert_with(|| text[..start].to_string());
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            } else if let Some(out) = &mut out {
                out.push_str(piece);
            }
            start += piece.len() + 1;
            if let Some(out) = &mut out {
                if start <= text.len() {
                    out.push(separator);
                }
            }
        }
        Ok(out.map_or(Cow::Borrowed(text), Cow::Owned))
    }
}

/// A form-encoded name or value decoded: `+` is a space, `%XX` a byte; the bytes must be UTF-8.
fn decode(text: &str) -> Result<String, Undecodable> {
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(Undecodable("a % not followed by two hex digits"));
        }
    }
    let spaced = text.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| Undecodable("an escape that is not UTF-8"))
}

/// The lower-case words of a short ASCII name, cut as [`words`] cuts them, without allocating:
/// every JSON key of every body redacted is looked at.
struct AsciiWords {
    lower: [u8; AsciiWords::MAX_LEN],
    /// Start and end of each word in `lower`.
    bounds: [(u8, u8); AsciiWords::MAX_WORDS],
    count: usize,
}

impl AsciiWords {
    const MAX_LEN: usize = 64;
    const MAX_WORDS: usize = 16;

    /// The words of `name`, when it is ASCII and short enough; `None` otherwise.
    fn of(name: &str) -> Option<AsciiWords> {
        let bytes = name.as_bytes();
        if bytes.len() > Self::MAX_LEN || !name.is_ascii() {
            return None;
        }
        let mut words = AsciiWords {
            lower: [0; Self::MAX_LEN],
            bounds: [(0, 0); Self::MAX_WORDS],
            count: 0,
        };
        let mut start = None;
        for (i, &c) in bytes.iter().enumerate() {
            words.lower[i] = c.to_ascii_lowercase();
            if !c.is_ascii_alphanumeric() {
                words.end(&mut start, i)?;
                continue;
            }
            if let Some(&previous) = i.checked_sub(1).and_then(|p| bytes.get(p)) {
                let next_is_lower = bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase);
                let boundary = (previous.is_ascii_lowercase() && c.is_ascii_uppercase())
                    || (previous.is_ascii_uppercase() && c.is_ascii_uppercase() && next_is_lower)
                    || (previous.is_ascii_alphabetic() && c.is_ascii_digit())
                    || (previous.is_ascii_digit() && c.is_ascii_alphabetic());
                if boundary {
                    words.end(&mut start, i)?;
                }
            }
            start.get_or_insert(i);
        }
        words.end(&mut start, bytes.len())?;
        Some(words)
    }

    /// Ends the word begun at `start`, if any, at `end`; `None` when there are too many.
    fn end(&mut self, start: &mut Option<usize>, end: usize) -> Option<()> {
        if let Some(begun) = start.take() {
            if self.count == Self::MAX_WORDS {
                return None;
            }
            self.bounds[self.count] = (begun as u8, end as u8);
            self.count += 1;
        }
        Some(())
    }

    fn word(&self, index: usize) -> &[u8] {
        let (start, end) = self.bounds[index];
        &self.lower[start as usize..end as usize]
    }

    /// Whether `secret`'s words occur in a row among these.
    fn contains(&self, secret: &[String]) -> bool {
        (0..(self.count + 1).saturating_sub(secret.len())).any(|first| {
            secret
                .iter()
                .enumerate()
                .all(|(i, word)| self.word(first + i) == word.as_bytes())
        })
    }
}

/// The lower-case words of a name.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            push_word(&mut words, &mut word);
            continue;
        }
        if let Some(&previous) = i.checked_sub(1).and_then(|p| chars.get(p)) {
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = (previous.is_lowercase() && c.is_uppercase())
                || (previous.is_uppercase() && c.is_uppercase() && next_is_lower)
                || (previous.is_alphabetic() && c.is_numeric())
                || (previous.is_numeric() && c.is_alphabetic());
            if boundary {
                push_word(&mut words, &mut word);
            }
        }
        word.extend(c.to_lowercase());
    }
    push_word(&mut words, &mut word);
    words
}

/// The searcher behind [`SecretNames::may_occur_in`]: one word of each name that is all ASCII
/// (a name matches only where all its words are, so one is enough; a name with a word not
/// ASCII cannot match an ASCII name), without the words that hold another one (`pass` finds
/// wherever `password` is). (A `\u` escape, which could spell any of them, is looked for
/// apart: a two-byte word would make every three-byte word's search look at more places.)
fn ascii_prefilter(names: &[Vec<String>]) -> WordSearch {
    let mut words: Vec<&str> = names
        .iter()
        .filter(|name| name.iter().all(|word| word.is_ascii()))
        .filter_map(|name| name.iter().min_by_key(|word| word.len()))
        .map(String::as_str)
        .collect();
    words.sort_by_key(|word| word.len());
    let mut kept: Vec<&str> = Vec::new();
    for word in words {
        if !kept.iter().any(|shorter| word.contains(shorter)) {
            kept.push(word);
        }
    }
    WordSearch::new(&kept)
}

fn push_word(words: &mut Vec<String>, word: &mut String) {
    if !word.is_empty() {
        words.push(std::mem::take(word));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_by_their_words() {
        let names = SecretNames::new(["card number"]);
        for secret in [
            "token",
            "access_token",
            "accessToken",
            "X-Amz-Signature",
            "api-key",
            "APIKey",
            "XAuthToken",
            "client_secret",
            "PHPSESSID",
            "Card-Number",
            "password2",
        ] {
            assert!(names.is_secret(secret), "{secret}");
        }
        for plain in ["keyword", "author", "id", "page", "monkey", "bypass", "q"] {
            assert!(!names.is_secret(plain), "{plain}");
        }
    }

    #[test]
    fn short_ascii_names_are_cut_into_the_same_words_without_allocating() {
        let names = [
            "token",
            "accessToken",
            "XAuthToken",
            "X-Amz-Signature",
            "APIKey",
            "password2",
            "a1b2",
            "HTTPServer",
            "_x__y_",
            "",
            "---",
            "keyword",
            "ID",
            "iD",
            "userID2fa",
            "Card-Number",
            "sessionid",
            "phpSESSID",
            "aB",
            "Ab",
            "AB",
            "a_b_c_d_e_f_g_h_i_j_k_l",
        ];
        for name in names {
            let fast = AsciiWords::of(name).unwrap();
            let fast: Vec<String> = (0..fast.count)
                .map(|i| String::from_utf8(fast.word(i).to_vec()).unwrap())
                .collect();
            assert_eq!(fast, words(name), "{name}");
        }
        assert!(AsciiWords::of("x".repeat(65).as_str()).is_none());
        assert!(AsciiWords::of("a_b_c_d_e_f_g_h_i_j_k_l_m_n_o_p_q").is_none());
        assert!(AsciiWords::of("clé").is_none());
        let secrets = SecretNames::new(["card number"]);
        let long = format!("{}_token", "x".repeat(80));
        for (name, secret) in [
            ("Card-Number", true),
            ("cardNumbers", false),
            (long.as_str(), true),
        ] {
            assert_eq!(secrets.is_secret(name), secret, "{name}");
        }
    }

    #[test]
    fn only_secret_values_are_replaced_and_the_rest_is_kept_as_written() {
        let names = SecretNames::new([]);
        assert_eq!(names.query("page=2&sort=asc"), "page=2&sort=asc");
        assert!(matches!(names.query("page=2"), Cow::Borrowed(_)));
        assert_eq!(
            names.query("page=2&access_token=abc%20def&q=a+b&api%5Fkey=k&flag&token="),
            "page=2&access_token=[redacted]&q=a+b&api%5Fkey=[redacted]&flag&token="
        );
        assert_eq!(names.query("a=1&"), "a=1&");
        assert_eq!(names.query("token=x&"), "token=[redacted]&");
        // A name that does not decode may be anything: its value goes.
        assert_eq!(names.query("%ff%fe=v&a=1"), "%ff%fe=[redacted]&a=1");
    }

    #[test]
    fn a_form_that_does_not_decode_is_an_error() {
        let names = SecretNames::new([]);
        assert_eq!(
            names.form("user=ann&password=hunter2").unwrap(),
            "user=ann&password=[redacted]"
        );
        assert!(names.form("user=ann&password=100%").is_err());
        assert!(names.form("user=%c3%28").is_err());
        assert_eq!(names.form("").unwrap(), "");
    }

    #[test]
    fn text_without_any_secret_word_is_told_apart_in_one_pass() {
        let names = SecretNames::new(["card number", "numéro"]);
        let plain = br#"{"id":42,"status":"confirmed","items":[{"sku":"SKU-1","name":"Room"}]}"#;
        assert!(!names.may_occur_in(plain));
        for text in [
            r#"{"Password":"x"}"#,
            r#"{"a":{"clientSECRET":1}}"#,
            r#"{"apiKey":"x"}"#,
            r#"{"cardNumber":"4111"}"#,
            r#"{"note":"the word token in a value"}"#,
            r#"{"p\u0061ss":"x"}"#,
            r#"{"idé":1}"#,
        ] {
            assert!(names.may_occur_in(text.as_bytes()), "{text}");
        }
    }

    proptest::proptest! {
        /// The one-pass check never clears a text that holds a secret name: any key of
        /// letters, digits and separators that names a secret is found in a body holding it.
        #[test]
        fn a_secret_key_is_never_cleared_by_the_one_pass_check(
            prefix in "[a-zA-Z0-9_ -]{0,8}",
            name in proptest::sample::select(&DEFAULT_SECRET_PARAMS[..]),
            shout in proptest::bool::ANY,
            suffix in "[a-zA-Z0-9_ -]{0,8}",
            before in "[a-z0-9 ]{0,16}",
        ) {
            let names = SecretNames::new(["card number", "booking ref"]);
            let name = if shout { name.to_ascii_uppercase() } else { name.to_string() };
            let key = format!("{prefix}{name}{suffix}");
            let body = format!(r#"{{"{before}":1,"{key}":"v"}}"#);
            if names.is_secret(&key) {
                proptest::prop_assert!(names.may_occur_in(body.as_bytes()), "{body}");
            }
        }
    }
}
