//! G.711 mu-law audio at 8 kHz: conversion, frame levels and generated test sounds.
//!
//! Conversions follow ITU-T G.711 as implemented by the ITU's reference software
//! (G.191 `g711.c`): 14-bit linear magnitudes, left-justified in an `i16`.

use std::f64::consts::TAU;

/// Samples per second on a Twilio media stream.
pub const SAMPLE_RATE: u32 = 8000;
/// Duration of one media frame in milliseconds.
pub const FRAME_MS: u32 = 20;
/// Bytes of mu-law in one 20 ms frame (one byte per sample).
pub const FRAME_BYTES: usize = 160;
/// Level reported for a frame with no signal at all (or no samples).
pub const SILENCE_FLOOR_DBFS: f32 = -100.0;
/// Longest sound [`tone`] and [`silence`] generate; longer requests are cut to this.
pub const MAX_GENERATED_MS: u32 = 10 * 60 * 1000;
/// The mu-law byte for a zero sample.
pub const MULAW_SILENCE: u8 = 0xFF;

const BIAS: i32 = 0x84;
const FULL_SCALE: f64 = 32768.0;

/// Decoded value of every mu-law byte.
static DECODE: [i16; 256] = decode_table();

const fn decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let inverted = !(code as u8);
        let exponent = (inverted >> 4) & 0x07;
        let mantissa = (inverted & 0x0F) as i32;
        let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
        table[code] = if inverted & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        code += 1;
    }
    table
}

/// Decodes one mu-law byte to a 16-bit linear sample (range ±32124).
pub fn mulaw_to_linear(code: u8) -> i16 {
    DECODE[usize::from(code)]
}

/// Encodes a 16-bit linear sample to mu-law (values beyond ±32635 clip).
pub fn linear_to_mulaw(sample: i16) -> u8 {
    // One's complement for negatives, as G.191 does: the magnitude of -1 is 0.
    let magnitude = i32::from(if sample < 0 { !sample } else { sample });
    let biased = ((magnitude >> 2) + 33).min(0x1FFF);
    // Segment 1..=8: one more than the bit length of `biased >> 6`.
    let segment = 33 - (biased >> 6).leading_zeros();
    let high = 8 - segment;
    let low = 0x0F - ((biased >> segment) & 0x0F);
    let code = (high << 4) | low as u32;
    let sign = if sample >= 0 { 0x80 } else { 0x00 };
    // `code` is at most 0x7F, so the cast keeps every bit.
    (code as u8) | sign
}

/// Appends the decoded samples of `mulaw` to `out` (clear it first to reuse it).
pub fn decode_into(mulaw: &[u8], out: &mut Vec<i16>) {
    out.extend(mulaw.iter().map(|&code| mulaw_to_linear(code)));
}

/// Appends the mu-law encoding of `samples` to `out` (clear it first to reuse it).
pub fn encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&sample| linear_to_mulaw(sample)));
}

/// RMS level of a mu-law frame in dBFS (0 is full scale), without allocating.
///
/// An empty or all-zero frame gives [`SILENCE_FLOOR_DBFS`].
pub fn energy_dbfs(mulaw: &[u8]) -> f32 {
    if mulaw.is_empty() {
        return SILENCE_FLOOR_DBFS;
    }
    let sum_of_squares: u64 = mulaw
        .iter()
        .map(|&code| {
            let sample = i64::from(mulaw_to_linear(code));
            sample.unsigned_abs().pow(2)
        })
        .sum();
    let mean = sum_of_squares as f64 / mulaw.len() as f64;
    if mean <= 0.0 {
        return SILENCE_FLOOR_DBFS;
    }
    let dbfs = 20.0 * (mean.sqrt() / FULL_SCALE).log10();
    (dbfs as f32).max(SILENCE_FLOOR_DBFS)
}

/// True when the frame's level is at or below `threshold_dbfs` (e.g. -50.0).
pub fn is_silence(mulaw: &[u8], threshold_dbfs: f32) -> bool {
    energy_dbfs(mulaw) <= threshold_dbfs
}

/// A mu-law sine tone of `freq_hz` lasting `ms`, at `amplitude` of full scale (0.0..=1.0).
///
/// Out-of-range amplitudes are clamped; a non-finite frequency or amplitude gives silence.
pub fn tone(freq_hz: f32, ms: u32, amplitude: f32) -> Vec<u8> {
    let freq = if freq_hz.is_finite() {
        f64::from(freq_hz)
    } else {
        0.0
    };
    let amplitude = if amplitude.is_finite() {
        f64::from(amplitude.clamp(0.0, 1.0))
    } else {
        0.0
    };
    let peak = amplitude * f64::from(i16::MAX);
    let step = TAU * freq / f64::from(SAMPLE_RATE);
    (0..sample_count(ms))
        .map(|n| {
            // Float-to-int `as` saturates, so no value can overflow.
            let sample = (peak * (step * n as f64).sin()).round() as i16;
            linear_to_mulaw(sample)
        })
        .collect()
}

/// `ms` of digital silence (`0xFF` bytes).
pub fn silence(ms: u32) -> Vec<u8> {
    vec![MULAW_SILENCE; sample_count(ms)]
}

/// Samples (= mu-law bytes) in `ms` milliseconds, capped at [`MAX_GENERATED_MS`].
fn sample_count(ms: u32) -> usize {
    let samples = u64::from(ms.min(MAX_GENERATED_MS)) * u64::from(SAMPLE_RATE) / 1000;
    usize::try_from(samples).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points_decode_exactly() {
        assert_eq!(mulaw_to_linear(0xFF), 0);
        assert_eq!(mulaw_to_linear(0x7F), 0);
        assert_eq!(mulaw_to_linear(0x80), 32124);
        assert_eq!(mulaw_to_linear(0x00), -32124);
        assert_eq!(mulaw_to_linear(0xFE), 8);
        assert_eq!(mulaw_to_linear(0x7E), -8);
        assert_eq!(mulaw_to_linear(0xEF), 132);
    }

    #[test]
    fn known_samples_encode_exactly() {
        assert_eq!(linear_to_mulaw(0), 0xFF);
        assert_eq!(linear_to_mulaw(-1), 0x7F);
        assert_eq!(linear_to_mulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_mulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_mulaw(32124), 0x80);
        assert_eq!(linear_to_mulaw(-32124), 0x00);
        assert_eq!(linear_to_mulaw(8), 0xFE);
        // G.191 rounds negatives by one's complement; Sun-derived coders give 0x00 here.
        assert_eq!(linear_to_mulaw(-31612), 0x01);
    }

    #[test]
    fn every_code_but_negative_zero_survives_decode_then_encode() {
        for code in 0..=u8::MAX {
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                linear_to_mulaw(mulaw_to_linear(code)),
                expected,
                "{code:#04x}"
            );
        }
    }

    #[test]
    fn round_trip_error_stays_within_half_a_quantization_step() {
        for sample in i16::MIN..=i16::MAX {
            let back = mulaw_to_linear(linear_to_mulaw(sample));
            let error = (i32::from(back) - i32::from(sample)).abs();
            let magnitude = i32::from(sample).abs();
            // A segment starting at (128 << e) - 132 has steps of 8 << e: half a step is
            // (start + 132) / 32. One more for the one's-complement negatives, plus clipping.
            let bound = if magnitude > 32124 {
                magnitude - 32124
            } else {
                (magnitude + 132) / 32 + 1
            };
            assert!(
                error <= bound,
                "{sample} -> {back} (error {error} > {bound})"
            );
            assert!(back.signum() * sample.signum() >= 0, "{sample}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut previous = i16::MIN;
        for sample in i16::MIN..=i16::MAX {
            let back = mulaw_to_linear(linear_to_mulaw(sample));
            assert!(back >= previous, "{sample}");
            previous = back;
        }
    }

    #[test]
    fn slice_helpers_append() {
        let mut samples = vec![1];
        decode_into(&[0xFF, 0x80, 0x00], &mut samples);
        assert_eq!(samples, [1, 0, 32124, -32124]);
        let mut codes = vec![];
        encode_into(&samples[1..], &mut codes);
        assert_eq!(codes, [0xFF, 0x80, 0x00]);
    }

    #[test]
    fn silence_is_silent() {
        let quiet = silence(FRAME_MS);
        assert_eq!(quiet.len(), FRAME_BYTES);
        assert!(quiet.iter().all(|&b| b == 0xFF));
        assert_eq!(energy_dbfs(&quiet), SILENCE_FLOOR_DBFS);
        assert!(is_silence(&quiet, -60.0));
        assert_eq!(energy_dbfs(&[]), SILENCE_FLOOR_DBFS);
    }

    #[test]
    fn a_tone_is_louder_than_silence_by_its_amplitude() {
        let loud = tone(440.0, FRAME_MS, 0.5);
        assert_eq!(loud.len(), FRAME_BYTES);
        let level = energy_dbfs(&loud);
        // A sine at half scale has an RMS of 0.5 / sqrt(2): about -9 dBFS.
        assert!((level + 9.03).abs() < 0.5, "{level}");
        assert!(!is_silence(&loud, -50.0));
        let faint = energy_dbfs(&tone(440.0, FRAME_MS, 0.01));
        assert!(faint < level - 30.0 && faint > -50.0, "{faint}");
    }

    #[test]
    fn full_scale_square_wave_is_near_zero_dbfs() {
        let frame: Vec<u8> = (0..FRAME_BYTES)
            .map(|i| if i % 2 == 0 { 0x80 } else { 0x00 })
            .collect();
        assert!((energy_dbfs(&frame) - 20.0 * (32124.0f32 / 32768.0).log10()).abs() < 0.01);
    }

    #[test]
    fn odd_generator_inputs_do_not_panic() {
        assert!(tone(f32::NAN, 20, 1.0).iter().all(|&b| b == 0xFF));
        assert!(tone(440.0, 20, f32::INFINITY).iter().all(|&b| b == 0xFF));
        assert_eq!(tone(440.0, 0, 1.0), Vec::<u8>::new());
        assert!(energy_dbfs(&tone(1e9, 20, 7.0)) <= 0.0);
        assert_eq!(silence(u32::MAX).len(), sample_count(MAX_GENERATED_MS));
        assert_eq!(silence(1).len(), 8);
    }
}
