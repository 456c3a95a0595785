//! One Azurite (the Azure Storage emulator, npm `azurite`) per test process, on free loopback
//! ports, in memory. `scripts/test` installs it; the tests fail, never skip, without it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use molten::azure::StorageAccount;
use molten::secrets::Secret;

use crate::support::root;

/// The running emulator.
pub struct Azurite {
    /// Blob, queue and table ports.
    pub ports: [u16; 3],
    // Closing this pipe (when the test process exits) makes the wrapper shell stop Azurite.
    _lifeline: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

/// The Azurite binary: `MOLTEN_AZURITE`, else the one `scripts/azurite install` puts under
/// `target/azurite`, else `azurite` on the PATH.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOLTEN_AZURITE") {
        return path.into();
    }
    let local = root().join("target/azurite/node_modules/.bin/azurite");
    if local.is_file() {
        return local;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("azurite"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        panic!("Azurite is not installed: run scripts/azurite install (scripts/test does), or set MOLTEN_AZURITE")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The process's emulator, started on first use.
pub fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(|| start(&[]))
}

/// An emulator of its own over https, accepting Entra bearer tokens (`--oauth basic`: any
/// well-formed, unexpired token for the storage audience) with the PEM `cert` and `key`.
pub fn with_oauth(cert: &std::path::Path, key: &std::path::Path) -> Azurite {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    start(&["--oauth", "basic", "--cert", cert, "--key", key])
}

fn start(extra: &[&str]) -> Azurite {
    let ports = [free_port(), free_port(), free_port()];
    let mut child = Command::new("sh")
        .arg("-c")
        // A background job's stdin is /dev/null, hence the copy on fd 3.
        .arg(
            r#"exec 3<&0; "$@" & child=$!; { read _ <&3; kill $child 2>/dev/null; } & wait $child"#,
        )
        .arg("sh")
        .arg(binary())
        .args([
            "--silent",
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--disableProductStyleUrl",
        ])
        .args([
            "--blobHost",
            "127.0.0.1",
            "--queueHost",
            "127.0.0.1",
            "--tableHost",
            "127.0.0.1",
        ])
        .args(["--blobPort", &ports[0].to_string()])
        .args(["--queuePort", &ports[1].to_string()])
        .args(["--tablePort", &ports[2].to_string()])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start Azurite");
    let lifeline = child.stdin.take().expect("piped stdin");
    let deadline = Instant::now() + Duration::from_secs(60);
    for port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("Azurite exited at start ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Azurite {
        ports,
        _lifeline: Mutex::new(lifeline),
        _child: Mutex::new(child),
    }
}

impl Azurite {
    /// A connection string for this emulator, as an operator would write it.
    pub fn connection_string(&self) -> String {
        format!("UseDevelopmentStorage=true;{}", self.endpoints("http"))
    }

    /// `BlobEndpoint=…;QueueEndpoint=…;TableEndpoint=…` with `scheme`.
    pub fn endpoints(&self, scheme: &str) -> String {
        let [blob, queue, table] = self.ports;
        format!(
            "BlobEndpoint={scheme}://127.0.0.1:{blob}/devstoreaccount1;QueueEndpoint={scheme}://127.0.0.1:{queue}/devstoreaccount1;TableEndpoint={scheme}://127.0.0.1:{table}/devstoreaccount1"
        )
    }

    /// The account, through molten's own HTTP client.
    pub fn account(&self) -> StorageAccount {
        StorageAccount::from_connection_string(
            &Secret::new(self.connection_string()),
            None,
            molten::service::http_client().expect("HTTP client"),
        )
        .expect("Azurite's connection string")
    }
}

/// A fresh lower-case name for a queue, container or table (letters and digits only).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fresh names for one deployment's queue, container and tables, and the `[azure]` section
/// that puts them in the account `storage` (a connection string).
pub struct Names {
    pub queue: String,
    pub container: String,
    pub tables: String,
}

impl Names {
    pub fn new() -> Self {
        Self {
            queue: unique("work"),
            container: unique("state"),
            tables: unique("t"),
        }
    }

    pub fn section(&self, storage: &str) -> String {
        format!(
            "[azure]\nstorage = \"{storage}\"\nqueue = \"{}\"\ncontainer = \"{}\"\ntable_prefix = \"{}\"\n",
            self.queue, self.container, self.tables
        )
    }
}
