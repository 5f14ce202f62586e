//! Finding and loading a named dataset on disk, in IDX (raw or .gz) or Kaggle CSV layout.
//!
//! A name (`mnist`, `fashion-mnist`) is looked up in, in order: an explicit directory,
//! `$SCRATCHNET_DATA/<name>`, `./data/<name>`, `/usr/share/datasets/<name>`. Anything else is
//! taken as a directory path.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::dataset::{Dataset, DatasetKind, Splits};
use super::{csv, gz, idx};
use crate::error::{Error, Result};

const CLASSES: usize = 10;

/// The files of one split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitFiles {
    Idx { images: PathBuf, labels: PathBuf },
    Csv(PathBuf),
}

/// What a directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub train: Option<SplitFiles>,
    pub test: Option<SplitFiles>,
}

fn first_existing(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn idx_split(dir: &Path, prefix: &str) -> Option<SplitFiles> {
    let names = |what: &str, rank: u8| -> Vec<String> {
        [format!("{prefix}-{what}-idx{rank}-ubyte"), format!("{prefix}-{what}.idx{rank}-ubyte")]
            .into_iter()
            .flat_map(|n| [format!("{n}.gz"), n])
            .collect()
    };
    Some(SplitFiles::Idx {
        images: first_existing(dir, &names("images", 3))?,
        labels: first_existing(dir, &names("labels", 1))?,
    })
}

fn csv_split(dir: &Path, split: &str) -> Option<SplitFiles> {
    let names: Vec<String> = ["fashion-mnist_", "mnist_", ""]
        .iter()
        .flat_map(|p| [format!("{p}{split}.csv"), format!("{p}{split}.csv.gz")])
        .collect();
    first_existing(dir, &names).map(SplitFiles::Csv)
}

/// The dataset files in `dir`, IDX preferred over CSV; None when it holds neither.
pub fn detect_layout(dir: &Path) -> Option<Layout> {
    let train = idx_split(dir, "train").or_else(|| csv_split(dir, "train"));
    let test = idx_split(dir, "t10k").or_else(|| csv_split(dir, "test"));
    (train.is_some() || test.is_some()).then_some(Layout { train, test })
}

/// The directories searched for a dataset name, in order.
pub fn search_path(name: &str, explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
    }
    if let Some(root) = std::env::var_os("SCRATCHNET_DATA") {
        dirs.push(PathBuf::from(root).join(name));
    }
    dirs.push(PathBuf::from("data").join(name));
    dirs.push(PathBuf::from("/usr/share/datasets").join(name));
    dirs
}

fn how_to_get(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::FashionMnist => {
            "Install it with `apt-get install -y dataset-fashion-mnist` (Debian; files go to /usr/share/datasets/fashion-mnist), \
             or put the four IDX files from https://github.com/zalandoresearch/fashion-mnist (or Kaggle's \
             fashion-mnist_train.csv / fashion-mnist_test.csv) in ./data/fashion-mnist"
        }
        DatasetKind::Mnist => {
            "Put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, \
             t10k-labels-idx1-ubyte.gz, from https://yann.lecun.com/exdb/mnist/ or a mirror) or Kaggle's mnist_train.csv / \
             mnist_test.csv in ./data/mnist, or set SCRATCHNET_DATA to a folder holding mnist/"
        }
    }
}

/// Class names follow the folder: "fashion" anywhere in its path or file names means Fashion-MNIST.
fn kind_of_dir(dir: &Path, layout: &Layout) -> DatasetKind {
    let mut names = vec![dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())];
    for s in [&layout.train, &layout.test].into_iter().flatten() {
        if let SplitFiles::Csv(p) = s {
            names.push(p.clone());
        }
    }
    if names.iter().any(|p| p.to_string_lossy().to_lowercase().contains("fashion")) {
        DatasetKind::FashionMnist
    } else {
        DatasetKind::Mnist
    }
}

/// Resolves `dataset` (a name or a directory) to a directory, its layout and its kind.
pub fn locate(dataset: &str, explicit_dir: Option<&Path>) -> Result<(PathBuf, Layout, DatasetKind)> {
    if let Some(kind) = DatasetKind::from_name(dataset) {
        let dirs = search_path(kind.name(), explicit_dir);
        for d in &dirs {
            if let Some(layout) = detect_layout(d) {
                return Ok((d.clone(), layout, kind));
            }
        }
        let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(Error::Data(format!(
            "dataset '{dataset}' not found; looked in: {}. {}",
            looked.join(", "),
            how_to_get(kind)
        )));
    }
    let dir = explicit_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(dataset));
    if !dir.is_dir() {
        return Err(Error::Data(format!(
            "'{dataset}' is neither a known dataset (mnist, fashion-mnist) nor a directory"
        )));
    }
    let layout = detect_layout(&dir).ok_or_else(|| {
        Error::Data(format!(
            "{} holds no dataset files; expected train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] / \
             t10k-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte[.gz], or mnist_train.csv / mnist_test.csv",
            dir.display()
        ))
    })?;
    let kind = kind_of_dir(&dir, &layout);
    Ok((dir, layout, kind))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
}

/// Loads one split from its files.
pub fn load_split(files: &SplitFiles, kind: DatasetKind) -> Result<Dataset> {
    match files {
        SplitFiles::Idx { images, labels } => {
            let (img_name, lab_name) = (images.display().to_string(), labels.display().to_string());
            let img_bytes = read(images)?;
            let (pixels, h, w) = idx::parse_images(&gz::maybe_inflate(&img_bytes, &img_name)?, &img_name)?;
            let lab_bytes = read(labels)?;
            let labels = idx::parse_labels(&gz::maybe_inflate(&lab_bytes, &lab_name)?, &lab_name, CLASSES)?;
            let count = pixels.len() / (h * w);
            if count != labels.len() {
                return Err(Error::Data(format!(
                    "{img_name} holds {count} images but {lab_name} holds {} labels",
                    labels.len()
                )));
            }
            Dataset::new(pixels, labels, h, w, kind.class_names())
        }
        SplitFiles::Csv(path) => {
            let name = path.display().to_string();
            let file = fs::File::open(path).map_err(|e| Error::Io(format!("{name}: {e}")))?;
            let parsed = if name.ends_with(".gz") {
                csv::parse(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(file)), &name, CLASSES)?
            } else {
                csv::parse(BufReader::with_capacity(1 << 20, file), &name, CLASSES)?
            };
            let side = (parsed.pixels_per_row as f64).sqrt() as usize;
            Dataset::new(parsed.pixels, parsed.labels, side, side, kind.class_names())
        }
    }
}

/// Locates and loads both splits of `dataset` (a name or a directory).
pub fn load(dataset: &str, explicit_dir: Option<&Path>) -> Result<Splits> {
    let (dir, layout, kind) = locate(dataset, explicit_dir)?;
    let load_opt = |f: &Option<SplitFiles>| f.as_ref().map(|f| load_split(f, kind)).transpose();
    Ok(Splits {
        kind,
        train: load_opt(&layout.train)?,
        test: load_opt(&layout.test)?,
        origin: dir.display().to_string(),
    })
}
