//! A loopback SMTP server for the mail test: it advertises `AUTH XOAUTH2 OAUTHBEARER`, decodes
//! the SASL message the client sends, accepts it only when the bearer token is one the
//! devserver honours (`resource::token_is_live`), and keeps each accepted message.

use crate::resource::token_is_live;
use base64::Engine as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server saw.
#[derive(Debug, Default, Clone)]
pub struct Mailbox {
    /// `user=` of every accepted authentication.
    pub users: Vec<String>,
    /// Authentications refused.
    pub refused: usize,
    /// Message bodies accepted (after DATA).
    pub messages: Vec<String>,
}

pub struct SmtpServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    mailbox: Arc<Mutex<Mailbox>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SmtpServer {
    pub fn start(userinfo: String) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let (stop2, mailbox2) = (stop.clone(), mailbox.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (mailbox, userinfo) = (mailbox2.clone(), userinfo.clone());
                        std::thread::spawn(move || {
                            let _ = session(stream, &userinfo, &mailbox);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SmtpServer {
            port,
            stop,
            mailbox,
            thread: Some(thread),
        }
    }

    pub fn mailbox(&self) -> Mailbox {
        self.mailbox.lock().unwrap().clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The user and token of a decoded XOAUTH2 (`user=U^Aauth=Bearer T^A^A`) or OAUTHBEARER
/// (`n,a=U,^A…auth=Bearer T^A^A`) message.
pub fn parse_sasl(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut user = None;
    let mut token = None;
    for part in text.split('\x01') {
        if let Some(u) = part.strip_prefix("user=") {
            user = Some(u.to_string());
        } else if let Some(rest) = part.strip_prefix("n,a=") {
            user = rest.strip_suffix(',').map(str::to_string);
        } else if let Some(t) = part.strip_prefix("auth=Bearer ") {
            token = Some(t.to_string());
        }
    }
    Some((user?, token?))
}

fn session(stream: TcpStream, userinfo: &str, mailbox: &Mutex<Mailbox>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    let say = |w: &mut TcpStream, line: &str| w.write_all(format!("{line}\r\n").as_bytes());
    say(&mut w, "220 authdeck-test ESMTP")?;
    let mut authed = false;
    for _ in 0..1000 {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            say(&mut w, "250-authdeck-test")?;
            say(&mut w, "250 AUTH XOAUTH2 OAUTHBEARER")?;
        } else if upper.starts_with("AUTH ") {
            let mut words = line.split_whitespace().skip(2);
            let initial = match words.next() {
                Some(ir) => ir.to_string(),
                None => {
                    say(&mut w, "334 ")?;
                    let mut resp = String::new();
                    r.read_line(&mut resp)?;
                    resp.trim().to_string()
                }
            };
            match parse_sasl(&initial).filter(|(_, t)| token_is_live(userinfo, t)) {
                Some((user, _)) => {
                    mailbox.lock().unwrap().users.push(user);
                    authed = true;
                    say(&mut w, "235 2.7.0 Accepted")?;
                }
                None => {
                    mailbox.lock().unwrap().refused += 1;
                    say(&mut w, "535 5.7.8 Username and Password not accepted")?;
                }
            }
        } else if upper.starts_with("MAIL") || upper.starts_with("RCPT") {
            if authed {
                say(&mut w, "250 OK")?;
            } else {
                say(&mut w, "530 5.7.0 Authentication required")?;
            }
        } else if upper == "DATA" {
            say(&mut w, "354 go ahead")?;
            let mut body = String::new();
            for _ in 0..100_000 {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 || l.trim_end() == "." {
                    break;
                }
                body.push_str(&l);
            }
            mailbox.lock().unwrap().messages.push(body);
            say(&mut w, "250 OK queued")?;
        } else if upper == "QUIT" {
            say(&mut w, "221 bye")?;
            return Ok(());
        } else {
            say(&mut w, "502 command not implemented")?;
        }
    }
    Ok(())
}
