//! SGD (momentum, Nesterov, decay) and Adam steps.

use super::*;

#[test]
fn optimizer_steps_match_the_cpu() {
    use crate::ops::{AdamStep, SgdStep};
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(9);
    let n = 1000;
    let start = randn(n, &mut rng);
    let grads: Vec<Vec<f32>> = (0..3).map(|_| randn(n, &mut rng)).collect();
    let mut worst = 0.0f32;
    let mut check = |what: &str, got: &[f32], want: &[f32]| {
        let scale: Vec<f32> = want.iter().zip(&start).map(|(w, s)| w.abs() + s.abs()).collect();
        let same = got.iter().zip(want).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
        eprintln!("{what}: {same}/{} bit-identical", got.len());
        worst = worst.max(rel_close(what, got, want, &scale, 1e-6));
    };
    for (momentum, nesterov, weight_decay) in
        [(0.0, false, 0.0), (0.0, false, 1e-3), (0.9, false, 0.0), (0.9, true, 5e-4)]
    {
        let h = SgdStep { lr: 0.05, momentum, weight_decay, nesterov };
        let (mut p, mut v) = (start.clone(), vec![0.0; n]);
        let (gp, gv) = (gpu.upload(&start).unwrap(), gpu.zeros(n).unwrap());
        for g in &grads {
            let velocity = (momentum > 0.0).then_some(&mut v[..]);
            cpu::optim::sgd(&mut p, g, velocity, &h);
            sgd_step(&gp, &gpu.upload(g).unwrap(), (momentum > 0.0).then_some(&gv), n, &h).unwrap();
        }
        check(&format!("sgd {h:?}"), &gpu.download(&gp).unwrap(), &p);
    }
    // A velocity decaying into the subnormal range is flushed to zero on both.
    let h = SgdStep { lr: 0.0, momentum: 0.5, weight_decay: 0.0, nesterov: false };
    let mut v = vec![2.0 * f32::MIN_POSITIVE; 4];
    let mut p = vec![1.0; 4];
    cpu::optim::sgd(&mut p, &[0.0; 4], Some(&mut v), &h);
    let gv = gpu.upload(&[2.0 * f32::MIN_POSITIVE; 4]).unwrap();
    sgd_step(&gpu.upload(&[1.0; 4]).unwrap(), &gpu.zeros(4).unwrap(), Some(&gv), 4, &h).unwrap();
    bits_eq("sgd velocity flush", &gpu.download(&gv).unwrap(), &v);
    for (decoupled, weight_decay) in [(false, 0.0), (false, 1e-2), (true, 1e-2)] {
        let (mut p, mut m, mut v) = (start.clone(), vec![0.0; n], vec![0.0; n]);
        let (gp, gm, gv) = (gpu.upload(&start).unwrap(), gpu.zeros(n).unwrap(), gpu.zeros(n).unwrap());
        for (i, g) in grads.iter().enumerate() {
            let h =
                AdamStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, decoupled, step: i as u64 + 1 };
            cpu::optim::adam(&mut p, g, &mut m, &mut v, &h);
            adam_step(&gp, &gpu.upload(g).unwrap(), &gm, &gv, n, &h).unwrap();
        }
        check(&format!("adam decoupled {decoupled} wd {weight_decay}"), &gpu.download(&gp).unwrap(), &p);
    }
    eprintln!("optimizers: max relative error {worst:.2e}");
}
