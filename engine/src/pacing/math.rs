//! The probability arithmetic of the pacer: answer counts as binomial and Poisson-binomial
//! distributions, and the expected share of answers that find no agent.

/// The largest `n` in `lo..=hi` with `fits(n)`, `fits` being true at `lo` and monotone.
pub(super) fn largest(lo: u32, hi: u32, fits: impl Fn(u32) -> bool) -> u32 {
    let (mut lo, mut hi) = (lo, hi.max(lo));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    lo
}

/// E[(X − free − F)⁺] / E[X] for answers X ~ Binomial(n, p) and agents freeing up F
/// distributed as `freeing`: the expected share of answers that find no agent.
#[cfg(test)]
pub(super) fn excess_ratio(n: u32, p: f64, free: u32, freeing: &[f64]) -> f64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0.0;
    }
    excess_share(&binomial_pmf(n, p), free, freeing)
}

/// E[(X − free − F)⁺] / E[X] for answers X distributed as `answers` (P(X = k) at k) and
/// agents freeing up F distributed as `freeing`; 0 when no answer is expected.
pub(super) fn excess_share(answers: &[f64], free: u32, freeing: &[f64]) -> f64 {
    let len = answers.len();
    // tail[k] = (P(X ≥ k), E[X; X ≥ k]), so E[(X − c)⁺] = E[X; X > c] − c P(X > c).
    let mut tail = vec![(0.0, 0.0); len + 1];
    for k in (0..len).rev() {
        tail[k] = (
            tail[k + 1].0 + answers[k],
            tail[k + 1].1 + k as f64 * answers[k],
        );
    }
    let expected = tail[0].1;
    if expected.is_nan() || expected <= 0.0 {
        return 0.0;
    }
    let over = |c: usize| {
        tail.get(c + 1)
            .map_or(0.0, |(p0, p1)| (p1 - c as f64 * p0).max(0.0))
    };
    let excess: f64 = freeing
        .iter()
        .enumerate()
        .map(|(f, pf)| pf * over(free as usize + f))
        .sum();
    excess / expected
}

/// The distribution of successes over independent trials of the given probabilities
/// (Poisson-binomial), built one trial at a time.
pub(super) fn poisson_binomial(probabilities: &[f64]) -> Vec<f64> {
    let mut pmf = Vec::with_capacity(probabilities.len() + 1);
    pmf.push(1.0);
    for &p in probabilities {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        pmf.push(0.0);
        for k in (0..pmf.len()).rev() {
            let stay = pmf[k] * (1.0 - p);
            let from_below = if k > 0 { pmf[k - 1] * p } else { 0.0 };
            pmf[k] = stay + from_below;
        }
    }
    pmf
}

/// The distribution of the sum of two independent counts.
pub(super) fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        if *x < 1e-15 {
            continue;
        }
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

/// The probabilities of 0..=n successes in n trials of probability p, summed in log space
/// so large n does not underflow.
pub(super) fn binomial_pmf(n: u32, p: f64) -> Vec<f64> {
    let mut pmf = vec![0.0; n as usize + 1];
    if p.is_nan() || p <= 0.0 || p >= 1.0 {
        let at = if p >= 1.0 { n as usize } else { 0 };
        if let Some(x) = pmf.get_mut(at) {
            *x = 1.0;
        }
        return pmf;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let mut log = f64::from(n) * lq;
    for (k, x) in pmf.iter_mut().enumerate() {
        if k > 0 {
            log += (f64::from(n) - k as f64 + 1.0).ln() - (k as f64).ln() + lp - lq;
        }
        *x = log.exp();
    }
    pmf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisson_binomial_of_equal_trials_is_the_binomial() {
        let pb = poisson_binomial(&[0.3; 12]);
        let b = binomial_pmf(12, 0.3);
        for (x, y) in pb.iter().zip(&b) {
            assert!((x - y).abs() < 1e-12, "{pb:?} vs {b:?}");
        }
        assert_eq!(poisson_binomial(&[]), vec![1.0]);
        let mixed = poisson_binomial(&[1.0, 0.0, 0.5]);
        assert_eq!(mixed, vec![0.0, 0.5, 0.5, 0.0]);
    }

    #[test]
    fn convolving_two_binomials_of_one_probability_adds_their_trials() {
        let sum = convolve(&binomial_pmf(5, 0.2), &binomial_pmf(7, 0.2));
        let direct = binomial_pmf(12, 0.2);
        for (x, y) in sum.iter().zip(&direct) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn the_excess_share_counts_answers_beyond_free_agents() {
        // Two certain answers, one agent: half the answers find nobody.
        assert!((excess_share(&[0.0, 0.0, 1.0], 1, &[1.0]) - 0.5).abs() < 1e-12);
        // An agent freeing up for sure takes the second.
        assert_eq!(excess_share(&[0.0, 0.0, 1.0], 1, &[0.0, 1.0]), 0.0);
        assert_eq!(
            excess_share(&[1.0], 0, &[1.0]),
            0.0,
            "no answers, no excess"
        );
    }
}
