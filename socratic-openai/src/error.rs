//! HTTP failures mapped onto [`LlmError`].

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use socratic_core::llm::LlmError;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// What the error mapping needs to name in its messages.
pub(crate) struct Context<'a> {
    pub(crate) url: &'a str,
    pub(crate) model: &'a str,
    pub(crate) api_key_env: Option<&'a str>,
}

/// The parts of an error body that servers agree on, whatever their envelope:
/// `{"error": {"message", "type", "code"}}` (OpenAI, Ollama, llama.cpp, Groq),
/// `{"object": "error", "message", "type", "code"}` (older vLLM) or `{"error": "…"}`.
#[derive(Debug, Default)]
struct ErrorBody {
    message: String,
    kind: String,
    code: String,
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn parse_body(body: &str) -> Option<ErrorBody> {
    let value: Value = serde_json::from_str(body).ok()?;
    let inner = match value.get("error") {
        Some(Value::String(message)) => {
            return Some(ErrorBody {
                message: message.clone(),
                ..ErrorBody::default()
            });
        }
        Some(object @ Value::Object(_)) => object,
        _ => &value,
    };
    Some(ErrorBody {
        message: text(inner.get("message")),
        kind: text(inner.get("type")),
        code: text(inner.get("code")),
    })
}

fn mentions_context_length(body: &ErrorBody) -> bool {
    let message = body.message.to_lowercase();
    body.code == "context_length_exceeded"
        || body.kind == "exceed_context_size_error"
        || [
            "context length",
            "context_length",
            "context window",
            "context size",
            "maximum context",
        ]
        .iter()
        .any(|needle| message.contains(needle))
}

/// Maps a non-success status and its body.
pub(crate) fn from_status(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    ctx: &Context<'_>,
) -> LlmError {
    let parsed = parse_body(body);
    let detail = parsed
        .as_ref()
        .map(|b| b.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| body.chars().take(300).collect());
    let described = format!("{} answered {status}: {detail}", ctx.url);
    match status {
        401 | 403 => LlmError::AccessDenied {
            message: match ctx.api_key_env {
                Some(variable) => format!(
                    "{} refused the API key from ${variable} ({status}): {detail}",
                    ctx.url
                ),
                None => format!(
                    "{} wants an API key ({status}): {detail}; name its environment variable in api_key_env",
                    ctx.url
                ),
            },
        },
        404 if parsed.is_some() => LlmError::ModelNotFound {
            model: format!("{} ({described})", ctx.model),
        },
        404 => LlmError::Validation {
            message: format!(
                "{} has no chat completions endpoint (404); check base_url, which should end in /v1",
                ctx.url
            ),
        },
        408 => LlmError::Timeout { message: described },
        429 if parsed
            .as_ref()
            .is_some_and(|b| b.code == "insufficient_quota" || b.kind == "insufficient_quota") =>
        {
            LlmError::Other {
                message: format!("quota exhausted: {described}"),
                retryable: false,
            }
        }
        429 => LlmError::Throttled {
            message: described,
            retry_after: retry_after(headers, OffsetDateTime::now_utc()),
        },
        400 | 413 | 422 if parsed.as_ref().is_some_and(mentions_context_length) => {
            LlmError::ContextWindow { message: described }
        }
        400 | 413 | 422 => {
            let body = parsed.unwrap_or_default();
            if body.code == "model_not_found" {
                LlmError::ModelNotFound {
                    model: format!("{} ({described})", ctx.model),
                }
            } else {
                LlmError::Validation { message: described }
            }
        }
        500..=599 => LlmError::Unavailable { message: described },
        _ => LlmError::Other {
            message: described,
            retryable: false,
        },
    }
}

/// Maps a failure to get an answer at all.
pub(crate) fn from_transport(error: &reqwest::Error, ctx: &Context<'_>) -> LlmError {
    if error.is_timeout() {
        LlmError::Timeout {
            message: format!("{} did not answer in time: {error}", ctx.url),
        }
    } else if error.is_connect() {
        LlmError::Unavailable {
            message: format!("cannot connect to {}: {error}", ctx.url),
        }
    } else {
        LlmError::Unavailable {
            message: format!("{} failed: {error}", ctx.url),
        }
    }
}

/// How long a 429 asks to wait, from (in order) `retry-after-ms`, `retry-after` (seconds or
/// an HTTP date), and the rate-limit reset headers (`x-ratelimit-reset-requests` and
/// `-tokens`: the reset of an exhausted limit, else the earliest).
pub(crate) fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(value) = header("retry-after") {
        if let Ok(seconds) = value.parse::<f64>()
            && seconds.is_finite()
            && seconds >= 0.0
        {
            return Some(Duration::from_secs_f64(seconds));
        }
        if let Ok(date) = OffsetDateTime::parse(value, &Rfc2822) {
            let wait = date - now;
            return Some(Duration::try_from(wait).unwrap_or(Duration::ZERO));
        }
    }
    let resets: Vec<(bool, Duration)> = ["requests", "tokens"]
        .iter()
        .filter_map(|limit| {
            let reset = header(&format!("x-ratelimit-reset-{limit}")).and_then(parse_duration)?;
            let exhausted = header(&format!("x-ratelimit-remaining-{limit}")) == Some("0");
            Some((exhausted, reset))
        })
        .collect();
    let exhausted = resets.iter().filter(|(e, _)| *e).map(|(_, d)| *d).max();
    exhausted.or_else(|| resets.iter().map(|(_, d)| *d).min())
}

/// Parses a rate-limit reset: a Go-style duration (`1s`, `6m0s`, `20ms`, `1h2m3.5s`) or a
/// bare number of seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let mut total = 0.0_f64;
    let mut rest = value;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    (!value.is_empty()).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn durations_parse_in_go_syntax_and_as_seconds() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_duration("2.5"), Some(Duration::from_secs_f64(2.5)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn retry_after_prefers_milliseconds_then_seconds_then_dates() {
        let now = OffsetDateTime::from_unix_timestamp(1_445_412_480).unwrap();
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
        let h = headers(&[("retry-after", "9")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(9)));
        // 2015-10-21 07:28:00 UTC is 1_445_412_480.
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn retry_after_uses_the_reset_of_the_exhausted_limit() {
        let now = OffsetDateTime::now_utc();
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "1200"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(1)));
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "10"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(360)));
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
