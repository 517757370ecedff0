//! One shutdown signal for a whole process: Ctrl-C or SIGTERM cancels it, and
//! every loop and server selects on it.

use tokio_util::sync::CancellationToken;

pub type Shutdown = CancellationToken;

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn on_signal() -> Shutdown {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        trigger.cancel();
    });
    token
}
