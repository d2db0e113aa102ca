//! A hostile S3 endpoint on 127.0.0.1 for the tests and the benchmark: it speaks just enough
//! HTTP/1.1 for the SDK and answers every request in one of the ways a store, proxy or attacker
//! could, to show that the daemon stays bounded. Each connection ends after one answer, and
//! every loop here is bounded (a minute per connection).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How the endpoint answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Writes succeed; GetObject announces `Content-Length: 5000000000` and streams zeros
    /// (for at most a minute per request).
    EndlessBody,
    /// Every request fails with an S3 error whose `<Message>` is this text.
    ErrorMessage(String),
}

/// A running hostile endpoint; stops when dropped.
pub struct Hostile {
    pub endpoint: String,
    stop: CancellationToken,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts an endpoint that answers every request with `answer`.
pub async fn start(answer: Answer) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let (token, answer) = (stop.clone(), Arc::new(answer));
    tokio::spawn(async move {
        loop {
            let socket = tokio::select! {
                _ = token.cancelled() => return,
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            };
            let (answer, token) = (answer.clone(), token.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::timeout(Duration::from_secs(60), serve(socket, &answer)) => {}
                }
            });
        }
    });
    Hostile { endpoint, stop }
}

/// Reads one request (headers, and a body of its Content-Length) and answers it.
async fn serve(mut s: TcpStream, answer: &Answer) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 1 << 20 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let method = head.split(' ').next().unwrap_or("").to_uppercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < length.min(32 << 20) {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
    }
    match answer {
        Answer::EndlessBody if method == "GET" && !head.contains("list-type=2") => {
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                  Content-Length: 5000000000\r\nx-amz-request-id: HOSTILE1\r\n\r\n",
            )
            .await?;
            let zeros = vec![0u8; 64 * 1024];
            loop {
                s.write_all(&zeros).await?;
            }
        }
        Answer::EndlessBody if method == "GET" => {
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                <ListBucketResult><Name>b</Name><KeyCount>0</KeyCount>\
                <IsTruncated>false</IsTruncated></ListBucketResult>";
            reply(&mut s, "200 OK", "application/xml", xml.as_bytes()).await
        }
        Answer::EndlessBody if method == "PUT" => {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
        }
        Answer::EndlessBody => {
            s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await
        }
        Answer::ErrorMessage(m) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <Error><Code>InvalidRequest</Code><Message>{m}</Message>\
                 <RequestId>HOSTILE2</RequestId></Error>"
            );
            reply(&mut s, "400 Bad Request", "application/xml", xml.as_bytes()).await
        }
    }
}

async fn reply(s: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         x-amz-request-id: HOSTILE3\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await
}
