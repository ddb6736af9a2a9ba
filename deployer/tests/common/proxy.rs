//! Endpoints that stop answering, as a frozen process or AWS busy with a call does: for tests of
//! what a client does when nothing comes back.

/// An endpoint that accepts `connections` connections and never answers, like a frozen process:
/// its URL, and the thread that holds the connections open (finished once all have come).
pub fn silent_endpoint(
    connections: usize,
) -> (
    String,
    std::thread::JoinHandle<Vec<std::io::Result<std::net::TcpStream>>>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || listener.incoming().take(connections).collect());
    (url, held)
}

/// A proxy in front of `target` (an http:// URL) that forwards every request but those whose text
/// contains `hold`: those it takes and never answers, like AWS still busy with the call (a client
/// that tries again is held again). Its URL, and a receiver told of each request held.
pub fn holding_proxy(target: &str, hold: &'static str) -> (String, std::sync::mpsc::Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let target = target.trim_start_matches("http://").to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (target, tx) = (target.clone(), tx.clone());
            std::thread::spawn(move || forward_one(client, &target, hold, &tx));
        }
    });
    (url, rx)
}

/// One request from `client` to `target` and its answer back, on a connection closed after it.
fn forward_one(
    mut client: std::net::TcpStream,
    target: &str,
    hold: &str,
    held: &std::sync::mpsc::Sender<()>,
) -> std::io::Result<()> {
    use std::io::{BufRead, Read, Write};
    let mut reader = std::io::BufReader::new(client.try_clone()?);
    let mut head = vec![];
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let length = head
        .iter()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if String::from_utf8_lossy(&body).contains(hold) || head.iter().any(|l| l.contains(hold)) {
        let _ = held.send(());
        // Keeps the connection open and unanswered for as long as the test lives.
        loop {
            std::thread::park();
        }
    }
    let mut upstream = std::net::TcpStream::connect(target)?;
    for line in head
        .iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
    {
        write!(upstream, "{line}\r\n")?;
    }
    write!(upstream, "Connection: close\r\n\r\n")?;
    upstream.write_all(&body)?;
    let mut response = vec![];
    upstream.read_to_end(&mut response)?;
    // Told to close, the client opens a new connection for its next request.
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let (response_head, rest) = response.split_at(split);
    let kept: Vec<&str> = std::str::from_utf8(response_head)
        .unwrap_or_default()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    write!(client, "{}\r\nConnection: close", kept.join("\r\n"))?;
    client.write_all(rest)?;
    Ok(())
}
