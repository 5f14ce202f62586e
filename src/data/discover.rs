//! Finding and loading a named dataset on disk, in IDX (raw or .gz) or Kaggle CSV layout.
//!
//! A name (`mnist`, `fashion-mnist`) is looked up in, in order: an explicit directory,
//! `$SCRATCHNET_DATA/<name>`, `./data/<name>`, `/usr/share/datasets/<name>`. Anything else is
//! taken as a directory path, whose dataset must be told from what it holds: the two datasets'
//! IDX files have the same names and headers, so never by default (see [`identify`]).

use std::fs;
use std::io::{BufRead, BufReader, Read};
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

/// The images and labels files of IDX split `prefix` (train, t10k), each if present.
fn idx_pair(dir: &Path, prefix: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let names = |what: &str, rank: u8| -> Vec<String> {
        [format!("{prefix}-{what}-idx{rank}-ubyte"), format!("{prefix}-{what}.idx{rank}-ubyte")]
            .into_iter()
            .flat_map(|n| [format!("{n}.gz"), n])
            .collect()
    };
    (first_existing(dir, &names("images", 3)), first_existing(dir, &names("labels", 1)))
}

fn idx_split(dir: &Path, prefix: &str) -> Option<SplitFiles> {
    match idx_pair(dir, prefix) {
        (Some(images), Some(labels)) => Some(SplitFiles::Idx { images, labels }),
        _ => None,
    }
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

/// [`detect_layout`], but a split of which only the images or only the labels file is present
/// (and no CSV stands in) is an error naming the missing file.
pub fn detect_complete_layout(dir: &Path) -> Result<Option<Layout>> {
    for (prefix, split) in [("train", "training"), ("t10k", "test")] {
        let csv = csv_split(dir, if prefix == "train" { "train" } else { "test" });
        let (have, missing) = match idx_pair(dir, prefix) {
            (Some(images), None) => (images, format!("its labels, {prefix}-labels-idx1-ubyte[.gz]")),
            (None, Some(labels)) => (labels, format!("its images, {prefix}-images-idx3-ubyte[.gz]")),
            _ => continue,
        };
        if csv.is_none() {
            return Err(Error::Data(format!(
                "{} holds {} but not {missing}; the {split} set needs both files",
                dir.display(),
                have.file_name().map_or_else(|| have.display().to_string(), |n| n.to_string_lossy().into_owned()),
            )));
        }
    }
    Ok(detect_layout(dir))
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
            "Download it with `scratchnet download fashion-mnist` (into ./data/fashion-mnist, or $SCRATCHNET_DATA/fashion-mnist \
             when set), install it with `apt-get install -y dataset-fashion-mnist` (Debian; files go to \
             /usr/share/datasets/fashion-mnist), or put the four IDX files from \
             https://github.com/zalandoresearch/fashion-mnist (or Kaggle's fashion-mnist_train.csv / \
             fashion-mnist_test.csv) in ./data/fashion-mnist"
        }
        DatasetKind::Mnist => {
            "Download it with `scratchnet download mnist` (into ./data/mnist, or $SCRATCHNET_DATA/mnist when set), or put \
             the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, \
             t10k-labels-idx1-ubyte.gz, from https://yann.lecun.com/exdb/mnist/ or a mirror) or Kaggle's mnist_train.csv / \
             mnist_test.csv in ./data/mnist, or set SCRATCHNET_DATA to a folder holding mnist/"
        }
    }
}

/// The first labels of the official files, in their published order. Labels that begin so are
/// (a prefix of) that set: 16 labels of 10 classes match by chance once in 10^16.
const KNOWN_STARTS: [(DatasetKind, &str, [u8; 16]); 4] = [
    (DatasetKind::Mnist, "training set", [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7]),
    (DatasetKind::Mnist, "test set", [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5]),
    (DatasetKind::FashionMnist, "training set", [9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9]),
    (DatasetKind::FashionMnist, "test set", [9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1]),
];

/// What the labels say: the dataset whose official files they begin as, and which file.
fn known_content(labels: &[u8]) -> Option<(DatasetKind, &'static str)> {
    KNOWN_STARTS.iter().find(|(_, _, start)| labels.starts_with(start)).map(|&(k, which, _)| (k, which))
}

/// Which dataset a directory holds, and how that was told; None when it cannot be.
///
/// In order: the labels (those of the official files, see `KNOWN_STARTS`), Kaggle CSV file
/// names (`fashion-mnist_train.csv`, `mnist_test.csv`), then the folder's path ("fashion" in a
/// component, or a last component `mnist`). The IDX files of the two datasets share their names
/// and headers, so a folder of renamed, reordered or subset files with neither is not guessed.
/// `labels`: each present split's labels (or their first 16), train then test.
pub fn identify(dir: &Path, layout: &Layout, labels: [Option<&[u8]>; 2]) -> Result<Option<(DatasetKind, String)>> {
    let found: Vec<(DatasetKind, &str)> = labels.iter().flatten().filter_map(|l| known_content(l)).collect();
    if let [(a, wa), (b, wb)] = found[..]
        && a != b
    {
        return Err(Error::Data(format!(
            "{}: its training labels are those of the {} {wa} but its test labels those of the {} {wb}",
            dir.display(),
            pretty(a),
            pretty(b)
        )));
    }
    if let Some(&(kind, which)) = found.first() {
        return Ok(Some((kind, format!("its labels are those of the official {} {which}", pretty(kind)))));
    }
    for s in [&layout.train, &layout.test].into_iter().flatten() {
        if let SplitFiles::Csv(p) = s {
            let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
            let kind = if name.contains("fashion") {
                DatasetKind::FashionMnist
            } else if name.starts_with("mnist") {
                DatasetKind::Mnist
            } else {
                continue;
            };
            return Ok(Some((kind, format!("its file is named {name}"))));
        }
    }
    let path = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let parts: Vec<String> = path.components().map(|c| c.as_os_str().to_string_lossy().to_lowercase()).collect();
    if parts.iter().any(|p| p.contains("fashion")) {
        return Ok(Some((DatasetKind::FashionMnist, "its path names fashion".into())));
    }
    if parts.last().is_some_and(|p| p == "mnist") {
        return Ok(Some((DatasetKind::Mnist, "its folder is named mnist".into())));
    }
    Ok(None)
}

fn pretty(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Mnist => "MNIST",
        DatasetKind::FashionMnist => "Fashion-MNIST",
    }
}

fn cannot_tell(dir: &Path) -> Error {
    let d = dir.display();
    Error::Data(format!(
        "cannot tell whether {d} holds MNIST or Fashion-MNIST: the two share file names and formats, and \
         its labels are not those of the official files. Say which: --dataset mnist --data-dir {d} \
         (or --dataset fashion-mnist --data-dir {d})"
    ))
}

/// A file's bytes, inflated when it is gzip data.
fn open_inflated(path: &Path) -> Option<Box<dyn Read>> {
    let mut f = BufReader::new(fs::File::open(path).ok()?);
    let gzip = gz::is_gzip(f.fill_buf().ok()?);
    Some(if gzip { Box::new(flate2::bufread::MultiGzDecoder::new(f)) } else { Box::new(f) })
}

/// Up to the first 16 labels of a split, read without loading it; None when unreadable (loading
/// will say why).
fn first_labels(files: &SplitFiles) -> Option<Vec<u8>> {
    match files {
        SplitFiles::Idx { labels, .. } => {
            let mut head = Vec::new();
            gz::read_up_to(&mut open_inflated(labels)?, &mut head, 8 + 16).ok()?;
            (head.get(..4)? == [0, 0, 8, 1]).then(|| head[8.min(head.len())..].to_vec())
        }
        SplitFiles::Csv(path) => {
            // 17 rows (a header and 16 images) of 28x28 are ~50 KB; the cap bounds a newline-less file.
            let lines = BufReader::new(open_inflated(path)?.take(1 << 20)).split(b'\n').take(17);
            let firsts = lines.map_while(|l| l.ok()).filter_map(|line| {
                let field = line.split(|&b| b == b',').next().unwrap_or_default().trim_ascii();
                let text = std::str::from_utf8(field).ok()?;
                text.strip_suffix(".0").unwrap_or(text).parse::<u8>().ok()
            });
            Some(firsts.collect())
        }
    }
}

/// A dataset's directory and layout, and its kind when given by name.
fn find(dataset: &str, explicit_dir: Option<&Path>) -> Result<(PathBuf, Layout, Option<DatasetKind>)> {
    if let Some(kind) = DatasetKind::from_name(dataset) {
        let dirs = search_path(kind.name(), explicit_dir);
        for d in &dirs {
            if let Some(layout) = detect_complete_layout(d)? {
                return Ok((d.clone(), layout, Some(kind)));
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
    let layout = detect_complete_layout(&dir)?.ok_or_else(|| {
        Error::Data(format!(
            "{} holds no dataset files; expected train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] / \
             t10k-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte[.gz], or mnist_train.csv / mnist_test.csv",
            dir.display()
        ))
    })?;
    Ok((dir, layout, None))
}

/// Resolves `dataset` (a name or a directory) to a directory, its layout and its kind. A
/// directory's kind is told by [`identify`] from the first labels of its files; when it cannot be,
/// this fails and asks for the name.
pub fn locate(dataset: &str, explicit_dir: Option<&Path>) -> Result<(PathBuf, Layout, DatasetKind)> {
    let (dir, layout, named) = find(dataset, explicit_dir)?;
    if let Some(kind) = named {
        return Ok((dir, layout, kind));
    }
    let (train, test) = (layout.train.as_ref().and_then(first_labels), layout.test.as_ref().and_then(first_labels));
    match identify(&dir, &layout, [train.as_deref(), test.as_deref()])? {
        Some((kind, _)) => Ok((dir, layout, kind)),
        None => Err(cannot_tell(&dir)),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
}

/// Loads one split from its files.
pub fn load_split(files: &SplitFiles, kind: DatasetKind) -> Result<Dataset> {
    match files {
        SplitFiles::Idx { images, labels } => {
            let (img_name, lab_name) = (images.display().to_string(), labels.display().to_string());
            // Raw or gzip; gzip is inflated only as far as the header declares.
            let (pixels, h, w) = idx::parse_images(&read(images)?, &img_name)?;
            let labels = idx::parse_labels(&read(labels)?, &lab_name, CLASSES)?;
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

/// The file a split's images come from, for messages.
fn images_file(files: &SplitFiles) -> String {
    match files {
        SplitFiles::Idx { images, .. } => images.display().to_string(),
        SplitFiles::Csv(path) => path.display().to_string(),
    }
}

/// Locates and loads both splits of `dataset` (a name, or a directory whose kind [`identify`]
/// tells from the loaded labels; `load("fashion-mnist", Some(dir))` names a directory's kind).
/// Fails when the training and test images differ in size, or when a named directory's labels
/// are those of the other dataset's official files.
pub fn load(dataset: &str, explicit_dir: Option<&Path>) -> Result<Splits> {
    let (dir, layout, named) = find(dataset, explicit_dir)?;
    // Both datasets have 10 classes, so labels are checked alike; the names follow identity.
    let load_opt =
        |f: &Option<SplitFiles>| f.as_ref().map(|f| load_split(f, named.unwrap_or(DatasetKind::Mnist))).transpose();
    let (mut train, mut test) = (load_opt(&layout.train)?, load_opt(&layout.test)?);
    let (train_source, test_source) = (layout.train.as_ref().map(images_file), layout.test.as_ref().map(images_file));
    if let (Some(a), Some(b)) = (&train, &test)
        && (a.height, a.width) != (b.height, b.width)
    {
        return Err(Error::Data(format!(
            "{} holds {}x{} images but {} holds {}x{}; training and test images must be the same size",
            train_source.as_deref().unwrap_or_default(),
            a.height,
            a.width,
            test_source.as_deref().unwrap_or_default(),
            b.height,
            b.width
        )));
    }
    let labels = [train.as_ref().map(|d| &d.labels[..]), test.as_ref().map(|d| &d.labels[..])];
    let kind = match named {
        Some(kind) => {
            // Only the labels' own evidence can contradict a name the user gave.
            let content = labels.iter().flatten().find_map(|l| known_content(l));
            if let Some((other, which)) = content.filter(|&(k, _)| k != kind) {
                return Err(Error::Data(format!(
                    "{} was given as {} but holds {}: its labels are those of the official {} {which}",
                    dir.display(),
                    kind.name(),
                    other.name(),
                    pretty(other)
                )));
            }
            kind
        }
        None => identify(&dir, &layout, labels)?.map(|(k, _)| k).ok_or_else(|| cannot_tell(&dir))?,
    };
    for d in [&mut train, &mut test].into_iter().flatten() {
        d.classes = kind.class_names();
    }
    Ok(Splits { kind, train, test, origin: dir.display().to_string(), train_source, test_source })
}
