//! Server-sent events: one event of a stream, written out and read back.

use serde_json::Value;

/// One event of a stream: its `event:` name where the provider gives one, and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    /// One line (JSON, or OpenAI's `[DONE]`).
    pub data: String,
}

impl SseEvent {
    /// A named event with JSON data.
    pub(crate) fn named(event: &str, data: &Value) -> SseEvent {
        SseEvent {
            event: Some(event.to_string()),
            data: data.to_string(),
        }
    }

    /// A data-only event with JSON data.
    pub(crate) fn data(data: &Value) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_string(),
        }
    }

    /// The event as it goes on the wire, ending with its blank line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        if let Some(event) = &self.event {
            out.push_str("event: ");
            out.push_str(event);
            out.push('\n');
        }
        for line in self.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        out.into_bytes()
    }
}

/// The events of a stream: blocks separated by blank lines, `event:` and `data:` fields
/// read (several `data:` lines joined by newlines), comments and other fields skipped, as
/// the EventSource specification reads them. Blocks without data are no events.
pub fn parse_sse(stream: &[u8]) -> Vec<SseEvent> {
    let text = String::from_utf8_lossy(stream);
    let mut events = Vec::new();
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if let Some(data) = data.take() {
                events.push(SseEvent {
                    event: event.take(),
                    data,
                });
            }
            event = None;
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => event = Some(value.to_string()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_back_as_written() {
        let events = vec![
            SseEvent::named("message_start", &serde_json::json!({"a": 1})),
            SseEvent {
                event: None,
                data: "two\nlines".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        let bytes: Vec<u8> = events.iter().flat_map(SseEvent::to_bytes).collect();
        assert_eq!(parse_sse(&bytes), events);
        // CRLF line ends, comments and a missing final blank line.
        let odd = b": keep-alive\r\nevent: ping\r\ndata: {}\r\n\r\ndata:x";
        assert_eq!(
            parse_sse(odd),
            vec![
                SseEvent {
                    event: Some("ping".into()),
                    data: "{}".into()
                },
                SseEvent {
                    event: None,
                    data: "x".into()
                }
            ]
        );
    }
}
