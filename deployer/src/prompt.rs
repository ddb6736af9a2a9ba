//! A yes-or-no answer typed at the terminal, awaited rather than blocked on: the line is read on
//! a thread of its own, so Ctrl-C at the question stops the command at once (main's handler
//! runs only while the command's future is waiting, never while it blocks).

/// Whether the next line typed is a yes (`y`, `Y`, `yes`); the question is the caller's to print.
pub async fn answered_yes() -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Detached: a process that exits on Ctrl-C does not wait for it.
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(line);
    });
    matches!(rx.await.unwrap_or_default().trim(), "y" | "Y" | "yes")
}
