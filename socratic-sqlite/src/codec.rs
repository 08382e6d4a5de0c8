//! How small JSON documents are compressed: LZ4 with a fixed dictionary of the JSON socratic
//! writes (keys, roles, stop reasons), so that a skeleton or an entity of a few hundred bytes,
//! too short to compress alone, shrinks to a fraction, at a few microseconds a document.
//!
//! The first stored byte names the codec, then the length of the document (4 bytes, little
//! endian) and its LZ4 block. [`DICTIONARY_V1`] must never change, or what was written with it
//! could not be read.

/// Codec 1: an LZ4 block with [`DICTIONARY_V1`].
const LZ4_V1: u8 = 1;

/// The longest document read back: a length beyond it is damage, not a document.
const MAX_DOCUMENT: usize = 1 << 30;

/// The dictionary of codec 1: fragments of the JSON socratic writes, the most common last
/// (the nearest match is found first).
pub(crate) const DICTIONARY_V1: &str = concat!(
    r#"{"run":{"id":"","manifest":"","tutor":{"model":"","temperature":0.7},"scenario":"","vector":"aporia","#,
    r#""vector":"elenchus","vector":"scaffolding","repetition":1,"turns":3,"judges":1,"status":"curated","#,
    r#""failure":null,"created_at":"2026-12-05T00:00:00.000Z","updated_at":"2026-12-05T00:00:00.000Z"},"#,
    r#""outcome":{"outcome":"scored","scores":{"conceptual_fidelity":5,"dialectical_progress":5,"#,
    r#""pedagogical_stance":5,"persona_adaptation":5},"flags":{"ends_with_question":true,"reveals_answer":false},"#,
    r#""violations":[],"rationale":"","outcome":"unscored","reason":"","attempts":1,"calls":[{"role":"judge","#,
    r#""summary":{"dimension_means":{},"overall":4.5,"min":4.0,"max":5.0,"median":4.5,"std_dev":0.5,"#,
    r#""compliance":1.0,"half_life":null,"answer_leak_turn":null,"goal_reached_turn":2,"#,
    r#""telling":[{"turn":1,"judges":false,"verbatim":false}],"scored_turns":3,"unscored_judgments":0,"#,
    r#""tutor_latencies_ms":[0,0,0],"computed_at":"","judgments":[{"run":"","turn":1,"judge":"","#,
    r#"{"request":{"model":"","role":"judge","system":[{"text":"","cache_point":true}],"#,
    r#""structured_output":{"name":"record_judgment","description":"","schema":{}},"#,
    r#""exchanges":[{"response":{"text":"","structured":{},"stop_reason":"tool_use","#,
    r#"{"tutor":{"request":{"model":"","role":"tutor","system":,"messages":[{"speaker":"user","text":""},"#,
    r#"{"speaker":"assistant","text":""}],"structured_output":null,"temperature":0.7,"max_tokens":512,"#,
    r#""stop":[],"sample":1},"student":{"request":{"model":"","role":"student","temperature":0.0,"#,
    r#""turns":[{"run":"","index":1,"tutor_text":"","tutor_call":{"role":"tutor","model":"","#,
    r#""student_text":"","student_call":{"role":"student","model":"sim-student","cached":true,"#,
    r#""latency_ms":0,"stop_reason":"end_turn"},"created_at":"","#,
    r#"{"text":"","structured":null,"stop_reason":"end_turn","usage":{"input_tokens":100,"#,
    r#""output_tokens":50,"cache_read_tokens":0,"cache_write_tokens":0},"latency":{"secs":0,"nanos":0}}"#,
);

/// Compresses `bytes` with codec 1.
pub(crate) fn compress(bytes: &[u8]) -> Vec<u8> {
    let block = lz4_flex::block::compress_with_dict(bytes, DICTIONARY_V1.as_bytes());
    let mut stored = Vec::with_capacity(block.len() + 5);
    stored.push(LZ4_V1);
    stored.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    stored.extend_from_slice(&block);
    stored
}

/// Decompresses what [`compress`] made; `None` for anything else.
pub(crate) fn decompress(stored: &[u8]) -> Option<Vec<u8>> {
    let (&codec, rest) = stored.split_first()?;
    if codec != LZ4_V1 {
        return None;
    }
    let length: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    let length = usize::try_from(u32::from_le_bytes(length)).ok()?;
    if length > MAX_DOCUMENT {
        return None;
    }
    let plain =
        lz4_flex::block::decompress_with_dict(&rest[4..], length, DICTIONARY_V1.as_bytes()).ok()?;
    (plain.len() == length).then_some(plain)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn what_is_compressed_comes_back_and_small_json_shrinks() {
        let cache = br#"{"text":"Why do you think so?","structured":null,"stop_reason":"end_turn","usage":{"input_tokens":391,"output_tokens":30,"cache_read_tokens":153,"cache_write_tokens":0},"latency":{"secs":0,"nanos":0}}"#;
        let stored = compress(cache);
        assert_eq!(decompress(&stored).unwrap(), cache);
        assert!(
            stored.len() * 2 < cache.len(),
            "{} of {}",
            stored.len(),
            cache.len()
        );
        for body in [Vec::new(), vec![0u8, 255, 7], vec![b'x'; 100_000]] {
            assert_eq!(decompress(&compress(&body)).unwrap(), body);
        }
        let binary: Vec<u8> = (0..70_000).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(decompress(&compress(&binary)).unwrap(), binary);
    }

    #[test]
    fn another_codec_or_damaged_bytes_are_refused() {
        assert!(decompress(&[]).is_none());
        assert!(decompress(&[9, 1, 2]).is_none());
        let mut stored = compress(b"{\"text\":\"hello\"}");
        stored.truncate(stored.len() / 2);
        assert!(decompress(&stored).is_none());
    }
}
