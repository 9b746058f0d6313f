//! A TCP proxy for tests that cut connections: listens on 127.0.0.1 (a free port), forwards
//! each connection to a server, and drops every live connection on demand (the server stays
//! up and new connections go through again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct CutProxy {
    pub port: u16,
    /// Each cut bumps the generation; connections of older generations close.
    generation: watch::Sender<u64>,
    live: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Starts a proxy to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (generation, _) = watch::channel(0u64);
        let live = Arc::new(AtomicU64::new(0));
        let (gen_tx, live2) = (generation.clone(), live.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                let mut cut = gen_tx.subscribe();
                let mine = *cut.borrow_and_update();
                let live = live2.clone();
                live.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = cut.wait_for(|g| *g != mine) => {}
                    }
                    live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CutProxy {
            port,
            generation,
            live,
            task,
        }
    }

    /// Connections open through the proxy now.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::SeqCst)
    }

    /// Drops every connection open now; returns how many there were.
    pub fn cut_all(&self) -> u64 {
        let n = self.live();
        self.generation.send_modify(|g| *g += 1);
        n
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
