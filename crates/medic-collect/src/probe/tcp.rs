//! The tcp probe: a connect, nothing sent.

use medic_core::ProbeOutcome;

pub(crate) async fn tcp_probe(addr: &str) -> ProbeOutcome {
    match tokio::net::TcpStream::connect(addr).await {
        Ok(stream) => {
            drop(stream);
            ProbeOutcome::Ok
        }
        Err(e) => ProbeOutcome::Failed(format!("connect to {addr}: {e}")),
    }
}
