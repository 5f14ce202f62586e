//! The data side on real files: Fashion-MNIST from Debian's package, the official MNIST test set,
//! and every kind of broken input.

use std::io::Write;
use std::path::{Path, PathBuf};

use scratchnet::data::discover::{self, SplitFiles};
use scratchnet::data::{DatasetKind, csv, gz, idx};

/// The official MNIST test set, shipped in the repository (see its README for source and licence).
fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist")
}

fn mean_pixel(px: &[u8]) -> f64 {
    px.iter().map(|&p| p as f64).sum::<f64>() / px.len() as f64 / 255.0
}

#[test]
fn fashion_mnist_from_the_debian_package() {
    let s = discover::load("fashion-mnist", None).expect("apt-get install -y dataset-fashion-mnist");
    assert_eq!(s.kind, DatasetKind::FashionMnist);
    let (train, test) = (s.train().unwrap(), s.test().unwrap());
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!((train.height, train.width), (28, 28));
    assert_eq!(train.label_histogram(), vec![6_000; 10]);
    assert_eq!(test.label_histogram(), vec![1_000; 10]);
    assert_eq!(train.classes[9], "Ankle boot");
    // Published statistics: mean 0.2860 (train), 0.2868 (test) of the [0, 1] pixels.
    assert!((mean_pixel(&train.images) - 0.2860).abs() < 5e-4, "{}", mean_pixel(&train.images));
    assert!((mean_pixel(&test.images) - 0.2868).abs() < 5e-4, "{}", mean_pixel(&test.images));
    // The first training item is an ankle boot, the first test item too.
    assert_eq!((train.labels[0], test.labels[0]), (9, 9));
}

#[test]
fn validation_split_is_disjoint_and_seeded() {
    let test = discover::load("mnist", Some(&mnist_dir())).unwrap().test.unwrap();
    let (rest, val) = test.clone().split_validation(2_000, 1);
    assert_eq!((rest.len(), val.len()), (8_000, 2_000));
    let mut all: Vec<&[u8]> =
        (0..rest.len()).map(|i| rest.image(i)).chain((0..val.len()).map(|i| val.image(i))).collect();
    all.sort();
    let mut orig: Vec<&[u8]> = (0..test.len()).map(|i| test.image(i)).collect();
    orig.sort();
    assert_eq!(all, orig, "the two parts are a partition of the set");
    assert_eq!(test.clone().split_validation(2_000, 1).1, val);
    assert_ne!(test.split_validation(2_000, 2).1, val);
}

#[test]
fn mnist_official_test_set() {
    let s = discover::load("mnist", Some(&mnist_dir())).unwrap();
    assert_eq!(s.kind, DatasetKind::Mnist);
    assert!(s.train.is_none());
    assert!(s.train().unwrap_err().to_string().contains("no training set"));
    let test = s.test().unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(&test.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert!((mean_pixel(&test.images) - 0.1325).abs() < 5e-4, "{}", mean_pixel(&test.images));
}

#[test]
fn kaggle_csv_round_trip_matches_idx() {
    let s = discover::load("mnist", Some(&mnist_dir())).unwrap();
    let test = s.test().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mnist_test.csv");
    csv::write(std::io::BufWriter::new(std::fs::File::create(&path).unwrap()), &test.labels, &test.images, 784)
        .unwrap();
    let layout = discover::detect_layout(dir.path()).unwrap();
    assert_eq!(layout.test, Some(SplitFiles::Csv(path.clone())));
    let back = discover::load(dir.path().to_str().unwrap(), None).unwrap();
    assert_eq!(back.test().unwrap(), test);
}

#[test]
fn missing_dataset_says_where_it_looked_and_how_to_get_it() {
    let empty = tempfile::tempdir().unwrap();
    // A name never searched by default ensures no system copy interferes.
    let err = discover::load("mnist", Some(empty.path())).map(|_| ()).unwrap_err().to_string();
    if !Path::new("/usr/share/datasets/mnist").exists() && !Path::new("data/mnist").exists() {
        assert!(
            err.contains("looked in")
                && err.contains(&empty.path().display().to_string())
                && err.contains("t10k-images"),
            "{err}"
        );
    }
    let err = discover::load(empty.path().to_str().unwrap(), None).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("holds no dataset files"), "{err}");
    let err = discover::load("no-such-thing", None).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("neither a known dataset"), "{err}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn broken_files_give_errors_that_name_file_and_position() {
    let real = std::fs::read(mnist_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let raw = gz::maybe_inflate(&real, "x").unwrap().into_owned();
    let labels = gz::maybe_inflate(&std::fs::read(mnist_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap(), "y")
        .unwrap()
        .into_owned();
    let dir = tempfile::tempdir().unwrap();
    let load = |img: &[u8], lab: &[u8]| {
        let images = write(dir.path(), "t10k-images-idx3-ubyte", img);
        let labels = write(dir.path(), "t10k-labels-idx1-ubyte", lab);
        discover::load_split(&SplitFiles::Idx { images, labels }, DatasetKind::Mnist)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let m = load(&raw[..raw.len() - 1000], &labels);
    assert!(m.contains("t10k-images-idx3-ubyte") && m.contains("truncated") && m.contains("7840000"), "{m}");
    let mut fewer = vec![0u8, 0, 8, 1];
    fewer.extend_from_slice(&5000u32.to_be_bytes());
    fewer.extend_from_slice(&labels[8..5008]);
    let m = load(&raw, &fewer);
    assert!(m.contains("10000 images but") && m.contains("5000 labels"), "{m}");
    let mut wrong = raw.clone();
    wrong[2] = 0x0C;
    assert!(load(&wrong, &labels).contains("data type 0x0c (int)"));
    let m = load(&[], &labels);
    assert!(m.contains("empty file"), "{m}");
    let mut bad_label = labels.clone();
    bad_label[8 + 42] = 10;
    let m = load(&raw, &bad_label);
    assert!(m.contains("label 10 at index 42") && m.contains("byte offset 50"), "{m}");
    // Corrupt gzip: flip bytes in the middle of the stream.
    let mut corrupt = real.clone();
    for b in &mut corrupt[5000..5100] {
        *b = !*b;
    }
    let m = load(&corrupt, &labels);
    assert!(m.contains("corrupt gzip"), "{m}");
    let truncated_gz = &gzip(&raw)[..3000];
    assert!(load(truncated_gz, &labels).contains("corrupt gzip"));
    // A header that claims far more than the file holds is refused without allocating the claim.
    let huge = [0u8, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 28, 0, 0, 0, 28];
    assert!(idx::parse(&huge, "h").unwrap_err().to_string().contains("truncated"));

    let csv_err = |text: &str| {
        let p = write(dir.path(), "mnist_test.csv", text.as_bytes());
        discover::load_split(&SplitFiles::Csv(p), DatasetKind::Mnist).map(|_| ()).unwrap_err().to_string()
    };
    let header = format!("label,{}\n", (1..=784).map(|i| format!("pixel{i}")).collect::<Vec<_>>().join(","));
    let row = |label: &str, px: &str| format!("{label},{}\n", vec![px; 784].join(","));
    let m = csv_err(&format!("{header}{}{}", row("1", "0"), row("2", "0").replacen(",0", "", 1)));
    assert!(m.contains("mnist_test.csv") && m.contains("row 3: 784 columns; expected 785"), "{m}");
    let m = csv_err(&format!("{header}{}", row("1", "abc")));
    assert!(m.contains("row 2, column 2: expected a pixel value 0-255, found 'abc'"), "{m}");
    let m = csv_err(&format!("{header}{}", row("1", "300")));
    assert!(m.contains("row 2, column 2"), "{m}");
    let m = csv_err(&format!("{header}{}", row("12", "0")));
    assert!(m.contains("label 12 is outside"), "{m}");
    assert!(csv_err("").contains("no image rows"));
}
