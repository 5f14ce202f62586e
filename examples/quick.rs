use scratchnet::{
    data::discover,
    model::{Sequential, preset},
    train::{Trainer, evaluate},
};
fn main() {
    let name = std::env::args().nth(1).unwrap_or("mlp".into());
    let limit: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(60000);
    let splits = discover::load("fashion-mnist", None).unwrap();
    let train = splits.train.clone().unwrap().take(limit);
    let test = splits.test.clone().unwrap();
    let p = preset(&name).unwrap();
    let model = Sequential::new(p.spec, 0).unwrap();
    let mut t = Trainer::new(model, p.train);
    for _ in 0..2 {
        let s = t.run_epoch(&train, &mut |_, _| true).unwrap().unwrap();
        let e = evaluate(&mut t.model, &test, 256).unwrap();
        println!("{s:?} test {:.4}", e.accuracy);
    }
}
