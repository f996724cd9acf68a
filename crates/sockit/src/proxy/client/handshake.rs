//! The proxy handshake as a state machine ([`Handshake`]: SOCKS4/4a, SOCKS5 with RFC 1929
//! credentials, HTTP CONNECT), and its two drivers over a stream: [`handshake`] (tokio)
//! and [`handshake_blocking`].

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ProxyType;
use crate::error::{Error, Result};
use crate::proxy::{Credentials, TargetAddr, http, socks4, socks5};

/// A handshake that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// The protocol spoken.
    pub kind: ProxyType,
    /// The address the proxy reports it connected from (SOCKS5 `BND.ADDR`/`BND.PORT`,
    /// SOCKS4 `DSTIP`/`DSTPORT`, often `0.0.0.0:0`); `None` for HTTP.
    pub bound: Option<TargetAddr>,
    /// The proxy's reply in words, for `-v`: `SOCKS5 reply 0: succeeded`,
    /// `SOCKS4 reply 90: request granted`, `HTTP/1.1 200 Connection established`.
    pub reply: String,
}

/// What a [`Handshake`] needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write all of these bytes, then ask again.
    Send(Vec<u8>),
    /// Read at most this many bytes (at least 1) and [`Handshake::feed`] them.
    Recv(usize),
    /// The proxy agreed: the stream now reaches the target.
    Done(Established),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Socks5Method,
    Socks5Auth,
    Socks5Reply,
    Socks4Reply,
    HttpHead,
    Done,
    Failed,
}

/// The client's side of one proxy handshake, without I/O.
///
/// Call [`Handshake::step`] in a loop: on [`Step::Send`] write the bytes, on
/// [`Step::Recv`] read at most that many and hand them to [`Handshake::feed`] (an empty
/// slice means the proxy closed the connection), until [`Step::Done`].
///
/// ```
/// use sockit::proxy::client::{Handshake, ProxyType, Step};
/// use sockit::proxy::TargetAddr;
/// let target = TargetAddr::domain("127.0.0.1", 80).unwrap();
/// let mut hs = Handshake::new(ProxyType::Socks5, target, None).unwrap();
/// assert_eq!(hs.step().unwrap(), Step::Send(vec![5, 1, 0]));
/// assert_eq!(hs.step().unwrap(), Step::Recv(2));
/// hs.feed(&[5, 0]).unwrap();
/// assert_eq!(hs.step().unwrap(), Step::Send(vec![5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
/// assert_eq!(hs.step().unwrap(), Step::Recv(5));
/// let err = hs.feed(&[5, 5]).unwrap_err();
/// assert_eq!(err.to_string(), "proxy: SOCKS5 reply 5: connection refused by destination");
/// ```
#[derive(Debug, Clone)]
pub struct Handshake {
    kind: ProxyType,
    target: TargetAddr,
    auth: Option<Credentials>,
    state: State,
    out: Option<Vec<u8>>,
    buf: Vec<u8>,
    established: Option<Established>,
}

impl Handshake {
    /// A handshake asking a proxy of `kind` to connect to `target`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for what the protocol
    /// cannot carry: an IPv6 target over SOCKS4, a name [`TargetAddr::domain`] refuses, or
    /// credentials over 255 bytes.
    pub fn new(kind: ProxyType, target: TargetAddr, auth: Option<Credentials>) -> Result<Self> {
        // Build the messages once now, so that what cannot be sent fails before any I/O.
        let user = auth.as_ref().map(|c| c.username.as_bytes()).unwrap_or(b"");
        match kind {
            ProxyType::Socks4 => {
                socks4::request(socks4::CMD_CONNECT, &target, user)?;
            }
            ProxyType::Socks5 => {
                socks5::request(socks5::CMD_CONNECT, &target)?;
                if let Some(c) = &auth {
                    socks5::auth_request(c)?;
                }
            }
            ProxyType::Http => {
                crate::proxy::check_name(target.host().as_bytes())
                    .map_err(|why| Error::invalid_input("proxy", format!("target host: {why}")))?;
            }
        }
        Ok(Handshake {
            kind,
            target,
            auth,
            state: State::Start,
            out: None,
            buf: Vec::new(),
            established: None,
        })
    }

    /// What to do next.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) after the handshake
    /// failed (a [`Handshake::feed`] returned an error).
    pub fn step(&mut self) -> Result<Step> {
        if let Some(bytes) = self.out.take() {
            return Ok(Step::Send(bytes));
        }
        let want = match self.state {
            State::Start => {
                let user = self.auth.as_ref().map(|c| c.username.as_bytes());
                let first = match self.kind {
                    ProxyType::Socks5 => {
                        self.state = State::Socks5Method;
                        socks5::greeting(self.auth.is_some())
                    }
                    ProxyType::Socks4 => {
                        self.state = State::Socks4Reply;
                        socks4::request(socks4::CMD_CONNECT, &self.target, user.unwrap_or(b""))?
                    }
                    ProxyType::Http => {
                        self.state = State::HttpHead;
                        http::connect_request(&self.target, self.auth.as_ref())
                    }
                };
                return Ok(Step::Send(first));
            }
            State::Socks5Method | State::Socks5Auth => 2 - self.buf.len(),
            State::Socks5Reply => match socks5::message_len(&self.buf) {
                Some(total) => total - self.buf.len(),
                None => 5 - self.buf.len().min(4),
            },
            State::Socks4Reply => socks4::REPLY_LEN - self.buf.len(),
            State::HttpHead => http::read_hint(&self.buf),
            State::Done => {
                let done = self.established.clone().ok_or_else(|| self.failed())?;
                return Ok(Step::Done(done));
            }
            State::Failed => return Err(self.failed()),
        };
        Ok(Step::Recv(want.max(1)))
    }

    fn failed(&self) -> Error {
        Error::invalid_input("proxy", "the proxy handshake already failed")
    }

    /// Hands over bytes read from the proxy (at most what [`Step::Recv`] asked for); an
    /// empty slice says the proxy closed the connection.
    ///
    /// # Errors
    /// - [`ErrorKind::Proxy`](crate::ErrorKind::Proxy) for a refusal (its reply and code),
    ///   for the proxy closing the connection, asking for credentials that were not given,
    ///   or accepting none of the offered methods.
    /// - [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a reply that breaks the
    ///   protocol.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self.feed_inner(bytes);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn feed_inner(&mut self, bytes: &[u8]) -> Result<()> {
        let label = self.kind.label();
        if bytes.is_empty() {
            let at = match self.buf.len() {
                0 => String::new(),
                n => format!(" after {n} bytes of its reply"),
            };
            return Err(Error::proxy(
                None,
                format!("the proxy closed the connection during the {label} handshake{at}"),
            ));
        }
        self.buf.extend_from_slice(bytes);
        match self.state {
            State::Socks5Method => {
                let Some((method, used)) = socks5::parse_method_selection(&self.buf)? else {
                    return Ok(());
                };
                self.buf.drain(..used);
                self.out = Some(match (method, &self.auth) {
                    (socks5::METHOD_NONE, _) => {
                        self.state = State::Socks5Reply;
                        socks5::request(socks5::CMD_CONNECT, &self.target)?
                    }
                    (socks5::METHOD_USERPASS, Some(c)) => {
                        self.state = State::Socks5Auth;
                        socks5::auth_request(c)?
                    }
                    (socks5::METHOD_NO_ACCEPTABLE, auth) => {
                        let offered = if auth.is_some() {
                            "no authentication, username/password"
                        } else {
                            "no authentication; give credentials with --proxy-auth"
                        };
                        return Err(Error::proxy(
                            Some(i32::from(method)),
                            format!(
                                "SOCKS5 proxy accepts none of the offered authentication \
                                 methods (offered: {offered})"
                            ),
                        ));
                    }
                    (socks5::METHOD_USERPASS, None) => {
                        return Err(Error::protocol(
                            "proxy",
                            "SOCKS5 proxy chose username/password, which was not offered \
                             (give credentials with --proxy-auth)",
                        ));
                    }
                    (m, _) => {
                        return Err(Error::protocol(
                            "proxy",
                            format!(
                                "SOCKS5 proxy chose method {m} ({}), which was not offered",
                                socks5::method_name(m)
                            ),
                        ));
                    }
                });
            }
            State::Socks5Auth => {
                let Some((status, used)) = socks5::parse_auth_status(&self.buf)? else {
                    return Ok(());
                };
                self.buf.drain(..used);
                if status != 0 {
                    return Err(Error::proxy(
                        Some(i32::from(status)),
                        format!(
                            "SOCKS5 authentication failed (status {status}): wrong username \
                             or password"
                        ),
                    ));
                }
                self.state = State::Socks5Reply;
                self.out = Some(socks5::request(socks5::CMD_CONNECT, &self.target)?);
            }
            State::Socks5Reply => {
                // A refusal is known from its second byte: report it even when the proxy
                // sends no address after it, as some do.
                if let [socks5::VERSION, rep, ..] = self.buf[..]
                    && rep != socks5::REP_SUCCEEDED
                {
                    return Err(Error::proxy(
                        Some(i32::from(rep)),
                        format!("SOCKS5 reply {rep}: {}", socks5::reply_text(rep)),
                    ));
                }
                let Some((reply, used)) = socks5::parse_reply(&self.buf)? else {
                    return Ok(());
                };
                self.buf.drain(..used);
                self.finish(Some(reply.bound), "SOCKS5 reply 0: succeeded".to_string());
            }
            State::Socks4Reply => {
                if let [_, code, ..] = self.buf[..]
                    && code != socks4::REP_GRANTED
                {
                    socks4::parse_reply(&self.buf)?; // a bad version byte says more
                    return Err(Error::proxy(
                        Some(i32::from(code)),
                        format!("SOCKS4 reply {code}: {}", socks4::reply_text(code)),
                    ));
                }
                let Some((reply, used)) = socks4::parse_reply(&self.buf)? else {
                    return Ok(());
                };
                self.buf.drain(..used);
                let bound = TargetAddr::Ip(SocketAddr::V4(reply.bound));
                self.finish(Some(bound), "SOCKS4 reply 90: request granted".to_string());
            }
            State::HttpHead => {
                let Some((resp, used)) = http::parse_connect_response(&self.buf)? else {
                    return Ok(());
                };
                self.buf.drain(..used);
                let words = format!("{} {}", resp.status, resp.reason);
                if !resp.is_success() {
                    return Err(Error::proxy(
                        Some(i32::from(resp.status)),
                        format!("HTTP CONNECT {}", words.trim_end()),
                    ));
                }
                let reply = format!("HTTP/1.{} {}", resp.version, words.trim_end());
                self.finish(None, reply);
            }
            State::Start | State::Done | State::Failed => {
                return Err(Error::invalid_input(
                    "proxy",
                    "bytes fed to a proxy handshake that did not ask for any",
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self, bound: Option<TargetAddr>, reply: String) {
        self.state = State::Done;
        self.established = Some(Established {
            kind: self.kind,
            bound,
            reply,
        });
    }
}

/// The largest read a handshake asks for: a SOCKS5 reply with a 255-byte name.
const RECV_BUF: usize = 262;

/// Runs `hs` over a tokio stream, within `timeout` (`None`: no limit).
///
/// # Errors
/// - Those of [`Handshake::feed`].
/// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (`proxy handshake: timed out`) when `timeout` expires.
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) for a failed read or write (`proxy recv: [Errno 104] …`).
pub async fn handshake<S>(
    stream: &mut S,
    mut hs: Handshake,
    timeout: Option<Duration>,
) -> Result<Established>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let work = async {
        let mut buf = [0u8; RECV_BUF];
        loop {
            match hs.step()? {
                Step::Send(bytes) => {
                    stream
                        .write_all(&bytes)
                        .await
                        .map_err(|e| Error::from_io("proxy send", e))?;
                    stream
                        .flush()
                        .await
                        .map_err(|e| Error::from_io("proxy send", e))?;
                }
                Step::Recv(n) => {
                    let n = n.min(buf.len());
                    let got = stream
                        .read(&mut buf[..n])
                        .await
                        .map_err(|e| Error::from_io("proxy recv", e))?;
                    hs.feed(&buf[..got])?;
                }
                Step::Done(done) => return Ok(done),
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, work)
            .await
            .map_err(|_| Error::timeout("proxy handshake"))?,
        None => work.await,
    }
}

/// Runs `hs` over a blocking stream. Time is bounded by the stream's own timeouts (for a
/// [`Socket`](crate::Socket), `set_timeout`); an expired one is `proxy handshake: timed
/// out`.
///
/// # Errors
/// As [`handshake`].
pub fn handshake_blocking<S: Read + Write + ?Sized>(
    stream: &mut S,
    mut hs: Handshake,
) -> Result<Established> {
    let io_err = |op: &'static str, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Error::timeout("proxy handshake")
        }
        _ => Error::from_io(op, e),
    };
    let mut buf = [0u8; RECV_BUF];
    loop {
        match hs.step()? {
            Step::Send(bytes) => {
                stream
                    .write_all(&bytes)
                    .and_then(|()| stream.flush())
                    .map_err(|e| io_err("proxy send", e))?;
            }
            Step::Recv(n) => {
                let n = n.min(buf.len());
                let got = loop {
                    match stream.read(&mut buf[..n]) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        r => break r.map_err(|e| io_err("proxy recv", e))?,
                    }
                };
                hs.feed(&buf[..got])?;
            }
            Step::Done(done) => return Ok(done),
        }
    }
}
