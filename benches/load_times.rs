//! Times dataset loading: the gzip IDX Fashion-MNIST train set, and the same set as a Kaggle CSV.
use scratchnet::data::{DatasetKind, csv, discover};
use std::time::Instant;
fn main() {
    let (_, layout, _) = discover::locate("fashion-mnist", None).unwrap();
    let train = layout.train.unwrap();
    let t = Instant::now();
    let d = discover::load_split(&train, DatasetKind::FashionMnist).unwrap();
    println!("IDX .gz train set ({} images): {:.3} s", d.len(), t.elapsed().as_secs_f64());
    let dir = std::env::temp_dir().join("scratchnet-csv-timing");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fashion-mnist_train.csv");
    csv::write(std::io::BufWriter::new(std::fs::File::create(&path).unwrap()), &d.labels, &d.images, 784).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let t = Instant::now();
    let c = discover::load_split(&discover::SplitFiles::Csv(path.clone()), DatasetKind::FashionMnist).unwrap();
    println!(
        "Kaggle CSV train set ({} rows, {:.0} MB): {:.3} s",
        c.len(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(c, d);
    std::fs::remove_dir_all(&dir).unwrap();
}
