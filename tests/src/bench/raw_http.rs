//! A lean HTTP/1.1 keep-alive client for the benches' timed loops, in the manner of `wrk`:
//! one connection, requests written as bytes, responses parsed with `httparse`.
//!
//! The bench client runs on the same two cores as the server, so what it costs is taken
//! from the server: reqwest spends about 49 µs of CPU per request here, a third of what the
//! server spends answering a status lookup. This client does the least a client must (write
//! the request, read the status line, the headers and a `Content-Length` body), so the
//! figures measure the server. Answers are still checked: a status other than 200 fails
//! the run.

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection to `host:port`.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
    request: Vec<u8>,
}

/// A response: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    /// Connects to the server at `base` (`http://127.0.0.1:PORT`, with or without a
    /// trailing `/`).
    pub async fn open(base: &str) -> anyhow::Result<Self> {
        let host = base.strip_prefix("http://").context("a plain http:// base URL")?.trim_end_matches('/').to_owned();
        let stream = TcpStream::connect(&host).await.with_context(|| format!("connecting to {host}"))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, host, buf: Vec::with_capacity(16 * 1024), request: Vec::with_capacity(512) })
    }

    /// `GET path` (path and query, starting with `/`) with a bearer token.
    pub async fn get(&mut self, path: &str, bearer: &str) -> anyhow::Result<Answer> {
        self.request.clear();
        for part in ["GET ", path, " HTTP/1.1\r\nHost: ", &self.host, "\r\nAuthorization: Bearer ", bearer, "\r\n\r\n"] {
            self.request.extend_from_slice(part.as_bytes());
        }
        self.stream.write_all(&self.request).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> anyhow::Result<Answer> {
        // Bytes already read past the previous answer (none: one request at a time).
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf)? {
                httparse::Status::Complete(head) => {
                    let status = response.code.context("a status code")?;
                    let mut length = None;
                    for h in response.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = Some(std::str::from_utf8(h.value)?.trim().parse::<usize>()?);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            bail!("a chunked answer: this client reads Content-Length bodies only");
                        }
                    }
                    let length = length.context("an answer without Content-Length")?;
                    while self.buf.len() < head + length {
                        self.fill().await?;
                    }
                    let body = self.buf[head..head + length].to_vec();
                    return Ok(Answer { status, body });
                }
                httparse::Status::Partial => self.fill().await?,
            }
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let start = self.buf.len();
        self.buf.resize(start + 8192, 0);
        let n = self.stream.read(&mut self.buf[start..]).await?;
        self.buf.truncate(start + n);
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}
