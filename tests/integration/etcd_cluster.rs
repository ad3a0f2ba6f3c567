//! A real 3-member etcd cluster for the shared-vault tests: Debian's `etcd` binary on free
//! loopback ports, temporary data dirs, short heartbeat and election timeouts, every member
//! killed when the cluster is dropped. No mock: if `etcd` is missing the test fails and says
//! how to get it (CI installs it: `.ci/run`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member's addresses and process.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data: PathBuf,
    child: Option<Child>,
}

/// Three etcd members on loopback.
pub struct Cluster {
    members: Vec<Member>,
    initial_cluster: String,
    _dir: tempfile::TempDir,
}

/// The etcd server binary (`ETCD_BIN` overrides).
fn etcd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/usr/bin/etcd");
    assert!(
        p.exists(),
        "these tests need a real etcd server: /usr/bin/etcd is missing \
         (Debian: apt-get install etcd-server; .ci/run installs it), or set ETCD_BIN"
    );
    p
}

/// `n` distinct free ports: every listener is held until all are bound, so the kernel cannot
/// hand the same port out twice (it did: two members on one client port left the cluster
/// with two members, and a one-member-down test then lost quorum).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Cluster {
    /// Starts three members and waits until the cluster answers with a leader.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(6);
        let mut members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data: dir.path().join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            members: Vec::new(),
            initial_cluster,
            _dir: dir,
        };
        for m in &mut members {
            m.child = Some(spawn(m, &c.initial_cluster));
        }
        c.members = members;
        c.wait_healthy(Duration::from_secs(30));
        c
    }

    /// `host:port` of every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// `etcd://h:p,h:p,h:p/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}{prefix}", self.endpoints().join(","))
    }

    /// Kills member `i` (SIGKILL), keeping its data for a restart.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data dir.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        let child = spawn(&self.members[i], &self.initial_cluster);
        self.members[i].child = Some(child);
    }

    /// Whether member `i` answers `/health` as healthy (it has a leader and quorum).
    pub fn member_healthy(&self, i: usize) -> bool {
        let url = format!("http://127.0.0.1:{}/health", self.members[i].client_port);
        http_get(&url).is_some_and(|b| b.contains("\"health\":\"true\""))
    }

    /// Waits until every running member reports healthy.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let running: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].child.is_some())
                .collect();
            if running.iter().all(|&i| self.member_healthy(i)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd cluster not healthy within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The index of the current leader, by each running member's `etcd_server_is_leader`.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            self.members[i].child.is_some()
                && http_get(&format!(
                    "http://127.0.0.1:{}/metrics",
                    self.members[i].client_port
                ))
                .is_some_and(|m| m.lines().any(|l| l.trim() == "etcd_server_is_leader 1"))
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn spawn(m: &Member, initial_cluster: &str) -> Child {
    let client = format!("http://127.0.0.1:{}", m.client_port);
    let peer = format!("http://127.0.0.1:{}", m.peer_port);
    Command::new(etcd_bin())
        .args([
            "--name",
            &m.name,
            "--data-dir",
            m.data.to_str().unwrap(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            "authdeck-test",
            // Fast elections so a killed leader is replaced within about a second.
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--logger",
            "zap",
            "--log-level",
            "error",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd")
}

/// A plain HTTP/1.0 GET over a std socket with short timeouts (usable inside or outside an
/// async runtime); the body, or `None` on any failure.
fn http_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let addr: std::net::SocketAddr = host.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(1000))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(300))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.")
        .then(|| body.to_string())
        .filter(|_| head.split(' ').nth(1) == Some("200"))
}
