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
    // Run where ./data/mnist does not exist (the repository may hold a downloaded copy); only a
    // system-wide copy could still be found.
    if !Path::new("/usr/share/datasets/mnist").exists() {
        use assert_cmd::cargo::CommandCargoExt;
        let out = std::process::Command::cargo_bin("scratchnet")
            .unwrap()
            .current_dir(empty.path())
            .env_remove("SCRATCHNET_DATA")
            .args(["evaluate", "--dataset", "mnist", "--data-dir"])
            .arg(empty.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("looked in")
                && err.contains(&empty.path().display().to_string())
                && err.contains("scratchnet download mnist")
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

/// IDX bytes: unsigned-byte type, `dims`, then `data`.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// A split of `labels.len()` h x w images in `dir`, as gzip IDX files named with `prefix`.
fn idx_split(dir: &Path, prefix: &str, labels: &[u8], h: u32, w: u32) {
    let n = labels.len() as u32;
    let pixels: Vec<u8> = (0..n * h * w).map(|i| (i * 37 % 256) as u8).collect();
    write(dir, &format!("{prefix}-images-idx3-ubyte.gz"), &gzip(&idx(&[n, h, w], &pixels)));
    write(dir, &format!("{prefix}-labels-idx1-ubyte.gz"), &gzip(&idx(&[n], labels)));
}

fn load_err(dataset: &str, dir: Option<&Path>) -> String {
    discover::load(dataset, dir).map(|_| ()).unwrap_err().to_string()
}

/// The first 16 labels of the official Fashion-MNIST test set, then some more.
const FASHION_TEST_START: [u8; 18] = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 0, 0];
/// Labels of no official file.
const OTHER_LABELS: [u8; 18] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7];

#[test]
fn partial_folders_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(mnist_dir().join("t10k-images-idx3-ubyte.gz"), dir.path().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let m = load_err(dir.path().to_str().unwrap(), None);
    assert!(
        m.contains("holds t10k-images-idx3-ubyte.gz but not its labels, t10k-labels-idx1-ubyte[.gz]")
            && m.contains("the test set needs both files"),
        "{m}"
    );
    // The same through a name: the folder is not skipped in silence.
    assert_eq!(load_err("mnist", Some(dir.path())), m);

    // A complete test set beside half a training set.
    let dir = tempfile::tempdir().unwrap();
    idx_split(dir.path(), "t10k", &OTHER_LABELS, 28, 28);
    write(dir.path(), "train-labels-idx1-ubyte", &idx(&[2], &[1, 2]));
    let m = load_err(dir.path().to_str().unwrap(), None);
    assert!(m.contains("holds train-labels-idx1-ubyte but not its images, train-images-idx3-ubyte[.gz]"), "{m}");

    // Only a training set: loads, and asking for the test set says which files are absent.
    let dir = tempfile::tempdir().unwrap();
    idx_split(dir.path(), "train", &OTHER_LABELS, 28, 28);
    let s = discover::load("mnist", Some(dir.path())).unwrap();
    let m = s.test().unwrap_err().to_string();
    assert!(m.contains("holds no test set") && m.contains("t10k-labels-idx1-ubyte[.gz]"), "{m}");
}

#[test]
fn a_directory_dataset_is_identified_or_asked_for_never_guessed() {
    // The official MNIST test files, in a folder whose name says nothing: told by their labels.
    let s = discover::load(mnist_dir().to_str().unwrap(), None).unwrap();
    assert_eq!(s.kind, DatasetKind::Mnist);
    let anon = tempfile::tempdir().unwrap();
    idx_split(anon.path(), "t10k", &FASHION_TEST_START, 28, 28);
    let s = discover::load(anon.path().to_str().unwrap(), None).unwrap();
    assert_eq!(s.kind, DatasetKind::FashionMnist);
    assert_eq!(s.test().unwrap().classes[9], "Ankle boot");
    assert_eq!(discover::locate(anon.path().to_str().unwrap(), None).unwrap().2, DatasetKind::FashionMnist);

    // Labels of no official file and a folder name that says nothing: an error asking for the name.
    let unknown = tempfile::tempdir().unwrap();
    idx_split(unknown.path(), "t10k", &OTHER_LABELS, 28, 28);
    let d = unknown.path().display().to_string();
    for m in [load_err(&d, None), discover::locate(&d, None).map(|_| ()).unwrap_err().to_string()] {
        assert!(
            m.contains("cannot tell whether")
                && m.contains(&format!("--dataset mnist --data-dir {d}"))
                && m.contains("--dataset fashion-mnist"),
            "{m}"
        );
    }
    // Named, it loads as named.
    let s = discover::load("fashion-mnist", Some(unknown.path())).unwrap();
    assert_eq!((s.kind, s.test().unwrap().classes[0].as_str()), (DatasetKind::FashionMnist, "T-shirt/top"));
    // A name the labels contradict is refused.
    let m = load_err("fashion-mnist", Some(&mnist_dir()));
    assert!(m.contains("given as fashion-mnist but holds mnist") && m.contains("official MNIST test set"), "{m}");

    // Names that do tell: a Kaggle CSV's, a folder path naming fashion.
    let kaggle = tempfile::tempdir().unwrap();
    let rows: String = OTHER_LABELS.iter().map(|l| format!("{l},0,1,2,3\n")).collect();
    write(kaggle.path(), "fashion-mnist_test.csv", format!("label,a,b,c,d\n{rows}").as_bytes());
    assert_eq!(discover::load(kaggle.path().to_str().unwrap(), None).unwrap().kind, DatasetKind::FashionMnist);
    let plain = tempfile::tempdir().unwrap();
    write(plain.path(), "test.csv", rows.as_bytes());
    assert!(load_err(plain.path().to_str().unwrap(), None).contains("cannot tell"));
    let fashion = unknown.path().join("my-fashion-set");
    std::fs::create_dir(&fashion).unwrap();
    idx_split(&fashion, "t10k", &OTHER_LABELS, 28, 28);
    assert_eq!(discover::load(fashion.to_str().unwrap(), None).unwrap().kind, DatasetKind::FashionMnist);
}

#[test]
fn training_and_test_images_must_be_the_same_size() {
    let dir = tempfile::tempdir().unwrap();
    idx_split(dir.path(), "train", &OTHER_LABELS, 27, 29);
    idx_split(dir.path(), "t10k", &OTHER_LABELS, 28, 28);
    let m = load_err("mnist", Some(dir.path()));
    let (train, test) = (dir.path().join("train-images-idx3-ubyte.gz"), dir.path().join("t10k-images-idx3-ubyte.gz"));
    assert!(m.contains(&format!("{} holds 27x29 images but {} holds 28x28", train.display(), test.display())), "{m}");
    // Each split alone names its image file for later messages.
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::remove_file(&test).unwrap();
    let s = discover::load("mnist", Some(dir.path())).unwrap();
    assert_eq!(s.train_source, Some(train.display().to_string()));
    assert_eq!((s.train().unwrap().height, s.train().unwrap().width), (27, 29));
}

#[test]
fn gzip_idx_inflating_past_its_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The header declares 2 images; the stream goes on with 32 MiB of zeros (32 KiB compressed).
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&idx(&[2, 28, 28], &[0; 2 * 784])).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..32 {
        e.write_all(&zeros).unwrap();
    }
    let images = write(dir.path(), "t10k-images-idx3-ubyte.gz", &e.finish().unwrap());
    let labels = write(dir.path(), "t10k-labels-idx1-ubyte.gz", &gzip(&idx(&[2], &[1, 2])));
    let m = discover::load_split(&SplitFiles::Idx { images, labels }, DatasetKind::Mnist)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("t10k-images-idx3-ubyte.gz")
            && m.contains("unexpected bytes after the 1568 values")
            && m.contains("inflates to more than its header declares"),
        "{m}"
    );
}
