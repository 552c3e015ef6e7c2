//! Logging setup: tracing with a filter, human-readable or JSON lines.
//!
//! In JSON each line is one object. A request's `request completed` line
//! carries `http.route` (the pattern, never the path with ids),
//! `http.status` and `elapsed_ms`, and its `span` object the
//! `request.id`, `http.method` and, once the token is verified,
//! `user.id`.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global tracing subscriber, writing to standard error.
/// `RUST_LOG`, when set, overrides the configured level. Calling it twice
/// keeps the first subscriber.
pub fn init(settings: &LogSettings) {
    // Colour codes only help a terminal; in files they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = subscriber(settings, std::io::stderr, ansi);
    let _already_set = tracing::subscriber::set_global_default(subscriber);
}

/// Builds the subscriber `init` installs, writing to `writer`.
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match settings.format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Pretty => Box::new(builder.finish()),
    }
}
