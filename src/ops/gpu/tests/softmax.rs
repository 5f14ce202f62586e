//! Softmax and the fused softmax + cross-entropy, with the recorded loss and correct count.

use super::*;

#[test]
fn softmax_and_cross_entropy_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(8);
    let (mut worst_p, mut worst_d, mut worst_l) = (0.0f32, 0.0f32, 0.0f32);
    for (rows, k) in [(1, 1), (1, 10), (7, 2), (64, 10), (300, 37), (513, 10)] {
        for (smoothing, coarse_logits) in [(0.0, false), (0.1, true)] {
            let z: Vec<f32> = if coarse_logits {
                coarse(rows * k, &mut rng)
            } else {
                randn(rows * k, &mut rng).iter().map(|v| 3.0 * v).collect()
            };
            let labels: Vec<u32> = (0..rows).map(|_| rng.below(k) as u32).collect();
            let (mut probs, mut dl) = (vec![0.0; rows * k], vec![0.0; rows * k]);
            let loss = cpu::softmax::cross_entropy(&z, &labels, k, smoothing, &mut probs, &mut dl);
            let hits = probs
                .chunks(k)
                .zip(&labels)
                .filter(|(row, y)| {
                    row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b }) == **y as usize
                })
                .count() as u32;

            let (gz, gl) = (gpu.upload(&z).unwrap(), gpu.upload_u32(&labels).unwrap());
            let (gp, gd) = (gpu.zeros(rows * k).unwrap(), gpu.zeros(rows * k).unwrap());
            let (gloss, gcorrect) = (gpu.zeros(4).unwrap(), gpu.upload_u32(&[9; 4]).unwrap());
            softmax_cross_entropy(&gz, &gl, rows, k, smoothing, &gp, &gd, &gloss, &gcorrect, 2).unwrap();
            let what = format!("{rows}x{k} smoothing {smoothing}");
            let got_p = gpu.download(&gp).unwrap();
            worst_p = worst_p.max(rel_close(&format!("ce probs {what}"), &got_p, &probs, &abs(&probs), 1e-5));
            let scale: Vec<f32> = probs.iter().map(|p| (p + 1.0) / rows as f32).collect();
            worst_d =
                worst_d.max(rel_close(&format!("ce dlogits {what}"), &gpu.download(&gd).unwrap(), &dl, &scale, 1e-5));
            let got_loss = gpu.download(&gloss).unwrap()[2];
            worst_l = worst_l.max(rel_close(&format!("ce loss {what}"), &[got_loss], &[loss], &[loss.abs()], 1e-5));
            assert_eq!(gpu.download_u32(&gcorrect).unwrap(), [9, 9, hits, 9], "{what}: correct count");

            let mut want = vec![0.0; rows * k];
            cpu::softmax::softmax(&z, k, &mut want);
            softmax(&gz, rows, k, &gp).unwrap();
            rel_close(&format!("softmax {what}"), &gpu.download(&gp).unwrap(), &want, &abs(&want), 1e-5);

            let best: Vec<u32> = z
                .chunks(k)
                .map(|row| row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b }) as u32)
                .collect();
            let gbest = gpu.zeros(rows).unwrap();
            argmax_rows(&gz, rows, k, &gbest).unwrap();
            assert_eq!(gpu.download_u32(&gbest).unwrap(), best, "argmax_rows {what}");
        }
    }
    eprintln!("cross_entropy: max relative error probs {worst_p:.2e}, dlogits {worst_d:.2e}, loss {worst_l:.2e}");
}
