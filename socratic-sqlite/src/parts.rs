//! Blob bodies split into content-addressed parts, so that what many blobs repeat is stored
//! once.
//!
//! A raw artifact repeats the system prompt, the rubric and the transcript so far; the cached
//! answer repeats the text the turn and the curated run hold. Every JSON string of at least
//! [`MIN_PART`] bytes becomes a part, stored once under the sha256 of its bytes; the blob
//! keeps a skeleton: the bytes between those strings, and the parts' hashes. The split works
//! on the bytes as written (no parsing, no re-serialising), so joining gives back exactly the
//! bytes put, for any body, JSON or not. Skeletons are compressed ([`crate::codec`]), and
//! large strings deflated.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use sha2::{Digest, Sha256};

use crate::codec;

/// The shortest string stored as a part: shorter ones cost more as references than inline.
pub(crate) const MIN_PART: usize = 64;

/// The shortest object or array (inside the body's outermost one) that may be stored as a
/// part of its own, once it repeats: a rubric's schema.
pub(crate) const MIN_CONTAINER: usize = 512;

/// A part's address: the sha256 of its bytes.
pub(crate) type Hash = [u8; 32];

const LITERAL: u8 = 0;
const PART: u8 = 1;

/// What a part holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// A string's bytes, as written between its quotes.
    Text(Vec<u8>),
    /// An object or array, itself split: its compressed skeleton.
    Container(Vec<u8>),
}

/// A body split: its skeleton (compressed) and every part it refers to, directly or through a
/// container, each once.
#[derive(Debug)]
pub(crate) struct Split {
    pub skeleton: Vec<u8>,
    pub parts: Vec<(Hash, Part)>,
}

/// Splits `body` into a skeleton and the parts it refers to. An object or array of at least
/// [`MIN_CONTAINER`] bytes becomes a part when `repeats` says so of its hash (most are
/// unique, and a part of their own would only add to them); else its strings are parts.
pub(crate) fn split(body: &[u8], repeats: &mut dyn FnMut(&Hash) -> bool) -> Split {
    let mut parts = Vec::new();
    let skeleton = split_into(body, 0, &mut parts, repeats);
    Split { skeleton, parts }
}

/// Splits `body`, at container depth `depth`, adding its parts to `parts`; its skeleton.
fn split_into(
    body: &[u8],
    mut depth: usize,
    parts: &mut Vec<(Hash, Part)>,
    repeats: &mut dyn FnMut(&Hash) -> bool,
) -> Vec<u8> {
    let mut skeleton = Vec::with_capacity(body.len() / 4);
    let mut literal_start = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let Some(end) = string_end(body, i) else {
                    // An unterminated string: the rest stays literal.
                    break;
                };
                let start = i + 1;
                if end - start >= MIN_PART {
                    literal(&mut skeleton, &body[literal_start..start]);
                    let bytes = &body[start..end];
                    reference(&mut skeleton, parts, bytes, || Part::Text(bytes.to_vec()));
                    literal_start = end;
                }
                i = end + 1;
            }
            b'{' | b'[' if depth >= 1 => {
                let repeated = container_end(body, i)
                    .filter(|end| end + 1 - i >= MIN_CONTAINER)
                    .map(|end| (end, Sha256::digest(&body[i..=end]).into()))
                    .filter(|(_, hash)| repeats(hash));
                if let Some((end, hash)) = repeated {
                    literal(&mut skeleton, &body[literal_start..i]);
                    if !parts.iter().any(|(h, _)| *h == hash) {
                        let mut inner = Vec::new();
                        let container = split_into(&body[i..=end], 0, &mut inner, repeats);
                        parts.extend(inner);
                        parts.push((hash, Part::Container(container)));
                    }
                    skeleton.push(PART);
                    skeleton.extend_from_slice(&hash);
                    literal_start = end + 1;
                    i = end + 1;
                } else {
                    depth += 1;
                    i += 1;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    literal(&mut skeleton, &body[literal_start..]);
    codec::compress(&skeleton)
}

/// Refers to `bytes` as a part, adding it (made by `make`) unless it is there.
fn reference(
    skeleton: &mut Vec<u8>,
    parts: &mut Vec<(Hash, Part)>,
    bytes: &[u8],
    make: impl FnOnce() -> Part,
) {
    let hash: Hash = Sha256::digest(bytes).into();
    skeleton.push(PART);
    skeleton.extend_from_slice(&hash);
    if !parts.iter().any(|(h, _)| *h == hash) {
        parts.push((hash, make()));
    }
}

/// The index of the quote that ends the string opened at `open`.
fn string_end(body: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    while at < body.len() {
        match body[at] {
            b'"' => return Some(at),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    None
}

/// The index of the bracket that closes the object or array opened at `open`.
fn container_end(body: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = open;
    while at < body.len() {
        match body[at] {
            b'"' => at = string_end(body, at)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

fn literal(skeleton: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    skeleton.push(LITERAL);
    skeleton.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    skeleton.extend_from_slice(bytes);
}

/// Where a piece of a skeleton is: `(start, length, None)` for literal bytes of the inflated
/// skeleton, `(0, 0, Some(hash))` for a part.
type Span = (usize, usize, Option<Hash>);

/// The pieces of a compressed skeleton, in order; `None` if it is damaged.
fn pieces(skeleton: &[u8]) -> Option<(Vec<u8>, Vec<Span>)> {
    let plain = codec::decompress(skeleton)?;
    let mut spans = Vec::new();
    let mut at = 0;
    while at < plain.len() {
        let tag = plain[at];
        at += 1;
        match tag {
            LITERAL => {
                let len_bytes: [u8; 8] = plain.get(at..at + 8)?.try_into().ok()?;
                let len = usize::try_from(u64::from_le_bytes(len_bytes)).ok()?;
                at += 8;
                plain.get(at..at + len)?;
                spans.push((at, len, None));
                at += len;
            }
            PART => {
                let hash: Hash = plain.get(at..at + 32)?.try_into().ok()?;
                spans.push((0, 0, Some(hash)));
                at += 32;
            }
            _ => return None,
        }
    }
    Some((plain, spans))
}

/// The hashes a skeleton refers to directly.
pub(crate) fn hashes(skeleton: &[u8]) -> Option<Vec<Hash>> {
    let (_, spans) = pieces(skeleton)?;
    Some(spans.into_iter().filter_map(|(_, _, h)| h).collect())
}

/// Joins a skeleton with its parts (`part` answers each hash, containers included) into the
/// body; `None` if a skeleton is damaged or a part is missing.
pub(crate) fn join(skeleton: &[u8], part: &impl Fn(&Hash) -> Option<Part>) -> Option<Vec<u8>> {
    let (plain, spans) = pieces(skeleton)?;
    let mut body = Vec::with_capacity(plain.len() * 2);
    for (at, len, hash) in spans {
        match hash {
            None => body.extend_from_slice(&plain[at..at + len]),
            Some(hash) => match part(&hash)? {
                Part::Text(bytes) => body.extend_from_slice(&bytes),
                Part::Container(inner) => body.extend_from_slice(&join(&inner, part)?),
            },
        }
    }
    Some(body)
}

/// Deflates `bytes`.
pub(crate) fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Inflates `bytes`; `None` if they are not deflated data.
pub(crate) fn inflate(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut plain = Vec::new();
    DeflateDecoder::new(bytes).read_to_end(&mut plain).ok()?;
    Some(plain)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn round_trip(body: &[u8]) -> Split {
        let split = split(body, &mut |_| true);
        let parts = split.parts.clone();
        let joined = join(&split.skeleton, &|h| {
            parts.iter().find(|(p, _)| p == h).map(|(_, b)| b.clone())
        })
        .unwrap();
        assert_eq!(joined, body);
        split
    }

    #[test]
    fn joining_gives_back_the_exact_bytes() {
        let long = "x".repeat(100);
        for body in [
            String::new(),
            "plain text, no quotes".to_owned(),
            format!(r#"{{"a":"{long}","b":"short","c":"{long}"}}"#),
            format!(r#"{{"escaped":"{long} \" still \\ inside \" {long}"}}"#),
            format!(r#"["{long}", "unterminated {long}"#),
            format!("\"{long}\"\\"),
            format!(
                r#"{{"x":[{{"y":"{long}"}}, "]", {{"z":"{long}"}}], "tail": [1, [2, {{"w": "{long}{long}{long}{long}{long}"}}]]}}"#
            ),
            format!(r#"{{"open":[{{"never closed":"{long}"#),
        ] {
            round_trip(body.as_bytes());
        }
        round_trip(&[0, 255, b'"', 0, 255]);
        let binary: Vec<u8> = (0..5000).map(|i| (i * 31 % 251) as u8).collect();
        round_trip(&binary);
    }

    #[test]
    fn a_repeated_long_string_is_one_part() {
        let prompt = "You are an expert judge of Socratic tutoring. ".repeat(4);
        let body = format!(r#"{{"system":"{prompt}","again":"{prompt}","tiny":"ok"}}"#);
        let split = round_trip(body.as_bytes());
        assert_eq!(split.parts.len(), 1);
        assert_eq!(split.parts[0].1, Part::Text(prompt.as_bytes().to_vec()));
    }

    #[test]
    fn a_large_inner_object_is_one_part_whose_strings_are_parts_too() {
        let description = "d".repeat(70);
        let fields: Vec<String> = (0..20)
            .map(|i| format!(r#""field{i}":{{"type":"integer","description":"{description}"}}"#))
            .collect();
        let schema = format!("{{{}}}", fields.join(","));
        let body = format!(r#"{{"a":{schema},"b":[1,2],"c":{schema}}}"#);
        let whole = round_trip(body.as_bytes());
        let containers = whole
            .parts
            .iter()
            .filter(|(_, p)| matches!(p, Part::Container(_)))
            .count();
        assert_eq!(containers, 1, "the schema, once");
        assert_eq!(whole.parts.len(), 2, "the schema and its one description");
        // The outermost object is never a part: it is the blob itself.
        round_trip(schema.as_bytes());
        // A container said not to repeat stays inline, its strings parts.
        let inline = split(body.as_bytes(), &mut |_| false);
        assert_eq!(inline.parts.len(), 1, "the description only");
    }

    #[test]
    fn a_damaged_skeleton_or_a_missing_part_joins_to_nothing() {
        let body = format!(r#"{{"a":"{}"}}"#, "y".repeat(80));
        let split = split(body.as_bytes(), &mut |_| true);
        assert!(join(&split.skeleton, &|_| None).is_none());
        assert!(join(b"not deflate", &|_| Some(Part::Text(Vec::new()))).is_none());
    }
}
