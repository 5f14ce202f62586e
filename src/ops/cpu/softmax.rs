//! Softmax and the fused softmax + cross-entropy loss.

/// probs (n, k) = softmax(logits) row by row, shifted by the row max for stability. Returns
/// nothing; `log_sum_exp` gives the matching normaliser.
pub fn softmax(logits: &[f32], k: usize, probs: &mut [f32]) {
    for (z, p) in logits.chunks(k).zip(probs.chunks_mut(k)) {
        let lse = log_sum_exp(z);
        for (p, &z) in p.iter_mut().zip(z) {
            *p = (z - lse).exp();
        }
    }
}

/// Index of the largest value in each row of `probs` (n, k): the first one on ties.
pub fn argmax_rows(probs: &[f32], k: usize) -> impl Iterator<Item = usize> + '_ {
    probs.chunks(k).map(|row| row.iter().enumerate().fold(0, |best, (j, &v)| if v > row[best] { j } else { best }))
}

/// How many rows of `probs` (n, k) have their first maximum at the row's label.
pub fn correct(probs: &[f32], k: usize, labels: &[u32]) -> usize {
    argmax_rows(probs, k).zip(labels).filter(|(p, y)| *p == **y as usize).count()
}

/// ln Σ exp(z), computed as max + ln Σ exp(z - max).
fn log_sum_exp(z: &[f32]) -> f32 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + z.iter().map(|&v| (v - max).exp()).sum::<f32>().ln()
}

/// Mean cross-entropy of softmax(logits) against (smoothed) one-hot labels, and its gradient
/// dlogits = (ŷ - y) / n. With smoothing ε the target is (1 - ε)·onehot + ε/k.
pub fn cross_entropy(
    logits: &[f32],
    labels: &[u32],
    k: usize,
    smoothing: f32,
    probs: &mut [f32],
    dlogits: &mut [f32],
) -> f32 {
    let n = labels.len();
    let (off, on) = (smoothing / k as f32, 1.0 - smoothing + smoothing / k as f32);
    let mut loss = 0.0f64;
    for (((z, p), d), &y) in logits.chunks(k).zip(probs.chunks_mut(k)).zip(dlogits.chunks_mut(k)).zip(labels) {
        let lse = log_sum_exp(z);
        for (j, ((&zj, pj), dj)) in z.iter().zip(p.iter_mut()).zip(d.iter_mut()).enumerate() {
            let t = if j == y as usize { on } else { off };
            let log_p = zj - lse;
            *pj = log_p.exp();
            if t > 0.0 {
                loss -= (t * log_p) as f64;
            }
            *dj = (*pj - t) / n as f32;
        }
    }
    (loss / n as f64) as f32
}
