//! Estimators over trial outcomes, pure and independent of helios' types: means with
//! standard errors (clustered by task when tasks have several attempts), t intervals,
//! the unbiased pass@k estimator, a seeded paired bootstrap and McNemar's exact test.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The confidence level of every interval helios reports.
pub const CONFIDENCE: f64 = 0.95;

/// A mean with its standard error and 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    /// `None` with fewer than two observations (or clusters): one value says nothing of
    /// its spread.
    pub std_error: Option<f64>,
    /// `[low, high]`: mean ± t(0.975, df) × standard error.
    pub ci95: Option<[f64; 2]>,
}

/// The arithmetic mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The standard error of the mean, from the sample standard deviation (n − 1).
pub fn standard_error(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let m = mean(values)?;
    let variance = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((variance / n as f64).sqrt())
}

/// The cluster-robust standard error of the overall mean of `clusters` (the CR1 sandwich
/// with the G/(G−1) correction, as Stata's `regress y, vce(cluster g)` computes it). With
/// one value per cluster it equals [`standard_error`].
pub fn clustered_standard_error(clusters: &[Vec<f64>]) -> Option<f64> {
    let clusters: Vec<&Vec<f64>> = clusters.iter().filter(|c| !c.is_empty()).collect();
    let g = clusters.len();
    if g < 2 {
        return None;
    }
    let n: usize = clusters.iter().map(|c| c.len()).sum();
    let m = clusters.iter().flat_map(|c| c.iter()).sum::<f64>() / n as f64;
    let scores: f64 = clusters
        .iter()
        .map(|c| c.iter().map(|v| v - m).sum::<f64>().powi(2))
        .sum();
    let variance = g as f64 / (g - 1) as f64 * scores / (n as f64).powi(2);
    Some(variance.sqrt())
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile_95(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df.max(1) as f64)
        .expect("a t distribution with positive degrees of freedom")
        .inverse_cdf(1.0 - (1.0 - CONFIDENCE) / 2.0)
}

/// The mean of every value, with a standard error clustered by `clusters` when any
/// cluster holds more than one value (several attempts of a task are not independent),
/// and a t interval with G − 1 (or n − 1) degrees of freedom.
pub fn estimate(clusters: &[Vec<f64>]) -> Option<Estimate> {
    let values: Vec<f64> = clusters.iter().flatten().copied().collect();
    let mean = mean(&values)?;
    let clustered = clusters.iter().any(|c| c.len() > 1);
    let (std_error, df) = if clustered {
        let g = clusters.iter().filter(|c| !c.is_empty()).count();
        (clustered_standard_error(clusters), g.saturating_sub(1))
    } else {
        (standard_error(&values), values.len().saturating_sub(1))
    };
    let ci95 = std_error.map(|se| {
        let half = t_quantile_95(df) * se;
        [mean - half, mean + half]
    });
    Some(Estimate {
        mean,
        std_error,
        ci95,
    })
}

/// The unbiased estimator of pass@k (Chen et al., 2021, "Evaluating Large Language Models
/// Trained on Code"): the chance that at least one of `k` attempts drawn without
/// replacement from `n`, of which `c` passed, passes: 1 − C(n−c, k) / C(n, k), computed as
/// the product 1 − Π_{i=n−c+1}^{n} (1 − k/i), which never forms large binomials.
/// `None` when `k` is 0 or more than `n`.
pub fn pass_at_k(n: u32, c: u32, k: u32) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let failing_all: f64 = (n - c + 1..=n)
        .map(|i| 1.0 - f64::from(k) / f64::from(i))
        .product();
    Some(1.0 - failing_all)
}

/// McNemar's exact test on paired binary outcomes: `b` pairs went one way (pass → fail),
/// `c` the other. The two-sided p-value is twice the binomial tail of min(b, c) under
/// p = ½, capped at 1; with no discordant pair it is 1.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // Σ_{i ≤ min} C(n, i) / 2^n, in logs so that large n cannot overflow.
    let smaller = b.min(c);
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for i in 0..=smaller {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// The result of a paired bootstrap of mean differences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    /// Pairs (shared tasks) resampled.
    pub pairs: usize,
    /// The mean of `b − a` over the pairs.
    pub mean_difference: f64,
    /// The 2.5th and 97.5th percentiles of the resampled mean differences.
    pub ci95: [f64; 2],
    /// Two-sided: the share of resampled differences, centred on zero, at least as far
    /// from zero as the observed one.
    pub p_value: f64,
    pub resamples: usize,
    pub seed: u64,
}

/// The resamples a paired bootstrap draws by default.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Resamples the pairs `(a, b)` with replacement `resamples` times with a ChaCha8 RNG
/// seeded by `seed` (the same input always gives the same answer); `None` for no pairs.
pub fn paired_bootstrap(
    pairs: &[(f64, f64)],
    resamples: usize,
    seed: u64,
) -> Option<PairedBootstrap> {
    let differences: Vec<f64> = pairs.iter().map(|(a, b)| b - a).collect();
    let observed = mean(&differences)?;
    let n = differences.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means = Vec::with_capacity(resamples);
    for _ in 0..resamples.max(1) {
        let mut sum = 0.0;
        for _ in 0..n {
            // Lemire's multiply-shift: an index below n; its bias (n / 2^64) is nil here.
            let i = ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize;
            sum += differences[i];
        }
        means.push(sum / n as f64);
    }
    means.sort_by(f64::total_cmp);
    let extreme = means
        .iter()
        .filter(|m| (*m - observed).abs() >= observed.abs() - 1e-12)
        .count();
    Some(PairedBootstrap {
        pairs: n,
        mean_difference: observed,
        ci95: [percentile(&means, 0.025), percentile(&means, 0.975)],
        p_value: if observed == 0.0 {
            1.0
        } else {
            extreme as f64 / means.len() as f64
        },
        resamples: means.len(),
        seed,
    })
}

/// The `q` quantile of sorted values, by linear interpolation between closest ranks.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    /// The reference formula with exact integer binomials.
    fn pass_at_k_reference(n: u32, c: u32, k: u32) -> f64 {
        fn choose(n: u32, k: u32) -> u128 {
            if k > n {
                return 0;
            }
            (0..k).fold(1u128, |acc, i| acc * u128::from(n - i) / u128::from(i + 1))
        }
        1.0 - choose(n - c, k) as f64 / choose(n, k) as f64
    }

    #[test]
    fn pass_at_k_matches_worked_examples() {
        // n = 5 attempts, c = 2 passed: pass@1 = c/n; pass@2 = 1 − C(3,2)/C(5,2) = 1 − 3/10;
        // pass@3 = 1 − C(3,3)/C(5,3) = 1 − 1/10; pass@4 = 1 (only 3 failures to draw).
        assert!(close(pass_at_k(5, 2, 1).unwrap(), 0.4, 1e-12));
        assert!(close(pass_at_k(5, 2, 2).unwrap(), 0.7, 1e-12));
        assert!(close(pass_at_k(5, 2, 3).unwrap(), 0.9, 1e-12));
        assert_eq!(pass_at_k(5, 2, 4), Some(1.0));
        assert_eq!(pass_at_k(5, 0, 5), Some(0.0));
        assert_eq!(pass_at_k(5, 5, 1), Some(1.0));
        assert_eq!(pass_at_k(5, 2, 6), None);
        assert_eq!(pass_at_k(5, 2, 0), None);
    }

    #[test]
    fn pass_at_k_agrees_with_the_reference_formula() {
        for n in 1..=30 {
            for c in 0..=n {
                for k in 1..=n {
                    let stable = pass_at_k(n, c, k).unwrap();
                    let reference = pass_at_k_reference(n, c, k);
                    assert!(
                        close(stable, reference, 1e-9),
                        "n={n} c={c} k={k}: {stable} vs {reference}"
                    );
                }
            }
        }
        // Large n, where C(n, k) no longer fits in any integer: still a probability.
        let large = pass_at_k(200, 13, 100).unwrap();
        assert!((0.0..=1.0).contains(&large));
        assert!(close(pass_at_k(200, 13, 1).unwrap(), 13.0 / 200.0, 1e-12));
    }

    #[test]
    fn standard_error_and_t_interval_by_hand() {
        // [1, 0, 1, 1, 0]: mean 0.6, sample variance (3·0.16 + 2·0.36)/4 = 0.3,
        // SE = √(0.3/5) = √0.06 = 0.2449490; t(0.975, 4) = 2.776445 (any t table), so the
        // interval is 0.6 ± 0.6800874.
        let values = [1.0, 0.0, 1.0, 1.0, 0.0];
        assert!(close(
            standard_error(&values).unwrap(),
            0.06f64.sqrt(),
            1e-12
        ));
        let five = estimate(&values.map(|v| vec![v])).unwrap();
        assert!(close(five.mean, 0.6, 1e-12));
        let [low, high] = five.ci95.unwrap();
        assert!(close(low, 0.6 - 0.6800874, 1e-6), "{low}");
        assert!(close(high, 0.6 + 0.6800874, 1e-6), "{high}");
        assert_eq!(standard_error(&[1.0]), None);
        assert_eq!(estimate(&[vec![1.0]]).unwrap().ci95, None);
    }

    #[test]
    fn t_quantiles_match_the_table() {
        assert!(close(t_quantile_95(1), 12.706205, 1e-5));
        assert!(close(t_quantile_95(2), 4.302653, 1e-5));
        assert!(close(t_quantile_95(4), 2.776445, 1e-5));
        assert!(close(t_quantile_95(30), 2.042272, 1e-5));
        assert!(close(t_quantile_95(100_000), 1.959964, 1e-4));
    }

    #[test]
    fn clustered_standard_error_by_hand() {
        // Tasks A [1, 1], B [0, 1], C [0, 0]: N = 6, mean 0.5, cluster score sums 1, 0, −1.
        // V = G/(G−1) · Σ s² / N² = 1.5 · 2 / 36 = 1/12, SE = 0.2886751 (what Stata's
        // `regress y, vce(cluster task)` reports for _cons); t(0.975, G−1 = 2) = 4.302653.
        let clusters = vec![vec![1.0, 1.0], vec![0.0, 1.0], vec![0.0, 0.0]];
        let se = clustered_standard_error(&clusters).unwrap();
        assert!(close(se, (1.0f64 / 12.0).sqrt(), 1e-12), "{se}");
        let [low, high] = estimate(&clusters).unwrap().ci95.unwrap();
        assert!(close(high - 0.5, 4.302653 * 0.2886751, 1e-5));
        assert!(close(0.5 - low, 4.302653 * 0.2886751, 1e-5));
        // One value per cluster: the ordinary standard error.
        let singletons = vec![vec![1.0], vec![0.0], vec![1.0], vec![1.0], vec![0.0]];
        assert!(close(
            clustered_standard_error(&singletons).unwrap(),
            0.06f64.sqrt(),
            1e-12
        ));
    }

    #[test]
    fn mcnemar_exact_by_hand() {
        // b = 1, c = 6: 2 · (C(7,0) + C(7,1)) / 2^7 = 2 · 8/128 = 0.125.
        assert!(close(mcnemar_exact(1, 6), 0.125, 1e-12));
        assert!(close(mcnemar_exact(6, 1), 0.125, 1e-12));
        // b = 0, c = 5: 2/32 = 0.0625.
        assert!(close(mcnemar_exact(0, 5), 0.0625, 1e-12));
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert!(mcnemar_exact(500, 400) < 0.01);
    }

    #[test]
    fn paired_bootstrap_is_seeded_and_sane() {
        let pairs: Vec<(f64, f64)> = (0..40)
            .map(|i| (f64::from(i % 2), f64::from(u8::from(i % 5 != 0))))
            .collect();
        let one = paired_bootstrap(&pairs, 2000, 7).unwrap();
        let again = paired_bootstrap(&pairs, 2000, 7).unwrap();
        assert_eq!(one, again);
        assert!(one.ci95[0] <= one.mean_difference && one.mean_difference <= one.ci95[1]);
        assert!(close(one.mean_difference, 0.3, 1e-12));
        assert!(one.p_value < 0.05, "{}", one.p_value);
        // Every pair differs by the same amount: no spread at all.
        let constant = paired_bootstrap(&[(0.0, 0.5); 10], 500, 1).unwrap();
        assert_eq!(constant.ci95, [0.5, 0.5]);
        let none = paired_bootstrap(&[(1.0, 1.0), (0.0, 0.0)], 500, 1).unwrap();
        assert_eq!(none.p_value, 1.0);
        assert_eq!(paired_bootstrap(&[], 10, 1), None);
    }
}
