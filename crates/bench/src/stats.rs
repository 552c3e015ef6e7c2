//! Percentiles of latency samples.

/// Returns the `percent` percentile of `sorted` by the nearest-rank method
/// (the smallest sample with at least `percent` % of the samples at or
/// below it), or `None` for no samples. `sorted` must be ascending.
pub fn percentile(sorted: &[f64], percent: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// Sorts `samples` ascending; NaN never occurs in durations, and sorts last.
pub fn sort(samples: &mut [f64]) {
    samples.sort_by(|a, b| a.total_cmp(b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_nothing_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 95.0), Some(95.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
    }

    #[test]
    fn percentile_of_few_samples_rounds_up() {
        let samples = [10.0, 20.0, 30.0];
        assert_eq!(percentile(&samples, 50.0), Some(20.0));
        assert_eq!(percentile(&samples, 99.0), Some(30.0));
    }

    #[test]
    fn sort_orders_ascending() {
        let mut samples = [3.0, 1.0, 2.0];
        sort(&mut samples);
        assert_eq!(samples, [1.0, 2.0, 3.0]);
    }
}
