//! How the report writes numbers: thousands separators, precision that suits the magnitude,
//! and a real minus sign.

use std::time::SystemTime;

/// `n` with a comma between each group of three digits: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A non-negative figure with `decimals` places and thousands separators: `12,345.6`.
pub fn decimal(value: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole = thousands(whole.parse().unwrap_or(0));
    let sign = if value < 0.0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        "−"
    } else {
        ""
    };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// A latency in milliseconds, without its unit, at a precision that suits its size:
/// `3,840`, `117`, `45.1`, `1.23`, `0.412`.
pub fn ms(value: f64) -> String {
    let places = match value.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        v if v >= 1.0 => 2,
        0.0 => 0,
        _ => 3,
    };
    decimal(value, places)
}

/// A chart's axis label: a latency in milliseconds without trailing zeros: `3,000`, `50`, `2.5`.
pub fn axis(value: f64) -> String {
    trim_zeros(&ms(value))
}

/// A share (0.0 ..= 1.0) as a percentage: `2.41%`, `12.5%`, `0%`, `<0.01%`.
pub fn share(fraction: f64) -> String {
    let pct = fraction * 100.0;
    match pct {
        0.0 => "0%".to_owned(),
        p if p < 0.01 => "<0.01%".to_owned(),
        p if p < 10.0 => format!("{}%", trim_zeros(&decimal(p, 2))),
        p => format!("{}%", trim_zeros(&decimal(p, 1))),
    }
}

/// A share of windows or pairs, to one decimal at most: `41%`, `99.6%`, `100%`.
pub fn coverage(fraction: f64) -> String {
    let pct = fraction * 100.0;
    // Never round a share short of everything up to 100 %, nor a non-zero one down to 0 %.
    let text = match pct {
        p if p > 99.9 && p < 100.0 => ">99.9".to_owned(),
        p if p > 0.0 && p < 0.1 => "<0.1".to_owned(),
        p => trim_zeros(&decimal(p, 1)),
    };
    format!("{text}%")
}

/// A request rate, without its unit: `2,000`, `49.5`.
pub fn rate(rps: f64) -> String {
    if rps >= 100.0 {
        decimal(rps, 0)
    } else {
        trim_zeros(&decimal(rps, 1))
    }
}

/// Digits for a percentage: whole numbers from 10%, one decimal below, and one decimal near
/// 100% so a decrease never reads as a full `−100%` it is not.
fn percent_text(magnitude: f64) -> String {
    if (99.5..100.0).contains(&magnitude) {
        return trim_zeros(&decimal(magnitude.min(99.9), 1));
    }
    let places = if magnitude >= 10.0 { 0 } else { 1 };
    trim_zeros(&decimal(magnitude, places))
}

/// A relative change in percent with its sign: `−97%`, `−99.6%`, `+1,820%`, `+4.2%`, `±0%`.
pub fn signed_percent(percent: f64) -> String {
    let text = percent_text(percent.abs());
    if text == "0" {
        return "±0%".to_owned();
    }
    let sign = if percent < 0.0 { "−" } else { "+" };
    format!("{sign}{text}%")
}

/// An unsigned percentage for prose: `97%`, `4.2%`, `99.6%`.
pub fn percent(percent: f64) -> String {
    format!("{}%", percent_text(percent.abs()))
}

/// A factor for prose: `3.2×`, `223×`.
pub fn factor(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{}×", decimal(ratio, 0))
    } else {
        format!("{}×", trim_zeros(&decimal(ratio, 1)))
    }
}

/// The UTC time of day of `t`: `14:02`, or `14:02:05` with `seconds`.
pub fn time_of_day(t: SystemTime, seconds: bool) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    let end = if seconds { 19 } else { 16 };
    text.get(11..end).unwrap_or(&text).to_owned()
}

/// Drops trailing zeros of a decimal fraction, and the point if nothing is left after it.
fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(3_840), "3,840");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn milliseconds_suit_their_size() {
        assert_eq!(ms(3_840.4), "3,840");
        assert_eq!(ms(117.2), "117");
        assert_eq!(ms(45.06), "45.1");
        assert_eq!(ms(1.234), "1.23");
        assert_eq!(ms(0.4123), "0.412");
        assert_eq!(ms(0.0), "0");
        assert_eq!(ms(-250.0), "−250");
        assert_eq!(axis(-50.0), "−50");
        assert_eq!(axis(2.5), "2.5");
        assert_eq!(axis(8_000.0), "8,000");
    }

    #[test]
    fn shares_and_changes() {
        assert_eq!(share(0.0241), "2.41%");
        assert_eq!(share(0.125), "12.5%");
        assert_eq!(share(0.0), "0%");
        assert_eq!(share(0.000_01), "<0.01%");
        assert_eq!(share(0.02), "2%");
        assert_eq!(coverage(0.41), "41%");
        assert_eq!(coverage(0.996), "99.6%");
        assert_eq!(coverage(0.999_9), ">99.9%");
        assert_eq!(coverage(1.0), "100%");
        assert_eq!(signed_percent(-96.95), "−97%");
        assert_eq!(signed_percent(1_820.0), "+1,820%");
        assert_eq!(signed_percent(4.21), "+4.2%");
        assert_eq!(signed_percent(0.01), "±0%");
        assert_eq!(percent(-63.2), "63%");
        assert_eq!(rate(1_999.6), "2,000");
        assert_eq!(rate(49.5), "49.5");
        assert_eq!(rate(50.0), "50");
    }

    #[test]
    fn times_of_day_are_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_338_525);
        assert_eq!(time_of_day(t, false), "14:02");
        assert_eq!(time_of_day(t, true), "14:02:05");
    }
}
