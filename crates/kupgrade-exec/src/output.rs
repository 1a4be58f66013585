//! Reading a command's output streams into their bounded captures
//! ([`StreamCapture`](kupgrade_core::capture::StreamCapture)), shared by the runners.
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) use kupgrade_core::capture::StreamCapture;
use kupgrade_core::ports::LineSink;

/// Reads `reader` to its end into `capture`. Read errors end the stream (the process is gone or
/// closed it); they are returned so the caller can log them.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    reader: &mut R,
    capture: &mut StreamCapture,
    sink: &LineSink,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        capture.push(&buf[..n], sink);
    }
}
