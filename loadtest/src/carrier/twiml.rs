//! Reading the TwiML a call runs when answered (or is given later through the REST API):
//! the `<Say>` texts, the `<Connect><Stream>` target, its `<Parameter>`s and whether it
//! hangs up.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// Longest TwiML document read; a fetched document beyond this is refused.
pub(crate) const MAX_TWIML_BYTES: usize = 64 * 1024;

/// The media stream a `<Connect><Stream>` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamTarget {
    pub url: String,
    /// `<Parameter name value>` pairs, in document order.
    pub parameters: Vec<(String, String)>,
}

/// What the simulator acts on in a TwiML document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Twiml {
    /// The first `<Connect><Stream>`, if any.
    pub stream: Option<StreamTarget>,
    /// A `<Hangup/>` appears.
    pub hangup: bool,
    /// The text of each `<Say>`, in document order, entities resolved.
    pub say: Vec<String>,
}

/// Parses TwiML; entities in attribute values are unescaped.
pub(crate) fn parse(xml: &str) -> Result<Twiml, String> {
    if xml.len() > MAX_TWIML_BYTES {
        return Err(format!("twiml of {} bytes is too long", xml.len()));
    }
    let mut reader = Reader::from_str(xml);
    let mut twiml = Twiml::default();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut saw_response = false;
    // The text of the `<Say>` being read.
    let mut saying: Option<String> = None;
    loop {
        let event = reader.read_event().map_err(|error| {
            format!("invalid twiml at byte {}: {error}", reader.error_position())
        })?;
        match event {
            Event::Start(element) => {
                on_element(&reader, &element, &path, &mut twiml, &mut saw_response)?;
                if is_say(&element, &path) {
                    saying = Some(String::new());
                }
                path.push(element.local_name().as_ref().to_vec());
            }
            Event::Empty(element) => {
                on_element(&reader, &element, &path, &mut twiml, &mut saw_response)?;
                if is_say(&element, &path) {
                    twiml.say.push(String::new());
                }
            }
            Event::Text(text) => {
                if let Some(said) = saying.as_mut() {
                    let text = text
                        .xml10_content()
                        .map_err(|error| format!("invalid <Say> text: {error}"))?;
                    said.push_str(&text);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(said) = saying.as_mut() {
                    said.push_str(&resolve_reference(&reference)?);
                }
            }
            Event::End(_) => {
                if path.pop().as_deref() == Some(b"Say".as_slice())
                    && let Some(said) = saying.take()
                {
                    twiml.say.push(said.trim().to_owned());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = path.last() {
        return Err(format!(
            "<{}> is never closed",
            String::from_utf8_lossy(open)
        ));
    }
    if !saw_response {
        return Err("twiml has no <Response> root".to_owned());
    }
    Ok(twiml)
}

fn on_element(
    reader: &Reader<&[u8]>,
    element: &BytesStart<'_>,
    path: &[Vec<u8>],
    twiml: &mut Twiml,
    saw_response: &mut bool,
) -> Result<(), String> {
    let name = element.local_name();
    let parent = path.last().map(Vec::as_slice);
    match (name.as_ref(), parent) {
        (b"Response", None) => *saw_response = true,
        (b"Hangup", Some(b"Response")) => twiml.hangup = true,
        (b"Stream", Some(b"Connect")) if twiml.stream.is_none() => {
            let url = attribute(reader, element, b"url")?
                .ok_or_else(|| "<Stream> has no url attribute".to_owned())?;
            if url.contains('?') {
                // Twilio takes no query string here; values go in <Parameter>.
                return Err(format!(
                    "<Stream url={url:?}> must not carry a query string"
                ));
            }
            twiml.stream = Some(StreamTarget {
                url,
                parameters: Vec::new(),
            });
        }
        (b"Parameter", Some(b"Stream")) => {
            let name = attribute(reader, element, b"name")?;
            let value = attribute(reader, element, b"value")?;
            // Only the first <Stream> collects parameters; a later one was ignored above.
            let in_first_stream = path.len() >= 2 && path[path.len() - 2] == b"Connect";
            if let (Some(name), Some(stream)) = (name, twiml.stream.as_mut())
                && in_first_stream
                && stream.parameters.len() < 256
            {
                stream.parameters.push((name, value.unwrap_or_default()));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A `<Say>` directly under `<Response>`.
fn is_say(element: &BytesStart<'_>, path: &[Vec<u8>]) -> bool {
    element.local_name().as_ref() == b"Say" && path.last().map(Vec::as_slice) == Some(b"Response")
}

/// The text an entity or character reference (`amp`, `#233`) stands for.
fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|error| format!("invalid character reference: {error}"))?
    {
        return Ok(c.to_string());
    }
    let name = reference
        .decode()
        .map_err(|error| format!("invalid entity reference: {error}"))?;
    quick_xml::escape::unescape(&format!("&{name};"))
        .map(|text| text.into_owned())
        .map_err(|_| format!("unknown entity &{name};"))
}

fn attribute(
    reader: &Reader<&[u8]>,
    element: &BytesStart<'_>,
    key: &[u8],
) -> Result<Option<String>, String> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|error| format!("invalid attribute: {error}"))?;
        if attribute.key.local_name().as_ref() == key {
            let value = attribute
                .decoded_and_normalized_value(XmlVersion::Implicit1_0, reader.decoder())
                .map_err(|error| format!("invalid attribute value: {error}"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_media::twilio::twiml::connect_stream;

    #[test]
    fn media_connect_stream_documents_round_trip_with_entities() {
        let params = [
            ("call_id", "42"),
            ("contact", r#"{"name":"Tom & \"Jerry\" <x>"}"#),
        ];
        let xml = connect_stream("ws://127.0.0.1:9/agent/a&b", &params);
        let twiml = parse(&xml).unwrap();
        let stream = twiml.stream.unwrap();
        assert_eq!(stream.url, "ws://127.0.0.1:9/agent/a&b");
        let expected: Vec<_> = params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(stream.parameters, expected);
        assert!(!twiml.hangup);
    }

    #[test]
    fn character_references_for_newlines_survive() {
        let xml = connect_stream("wss://h/p", &[("script", "line one\nline two")]);
        let stream = parse(&xml).unwrap().stream.unwrap();
        assert_eq!(stream.parameters[0].1, "line one\nline two");
    }

    #[test]
    fn a_stream_url_with_a_query_string_is_refused() {
        let xml = connect_stream("wss://h/media?call=1", &[]);
        assert!(parse(&xml).unwrap_err().contains("query string"));
    }

    #[test]
    fn say_and_hangup_has_no_stream() {
        let twiml = parse("<Response><Say>Bye</Say><Hangup/></Response>").unwrap();
        assert_eq!(
            twiml,
            Twiml {
                stream: None,
                hangup: true,
                say: vec!["Bye".to_owned()],
            }
        );
    }

    #[test]
    fn say_text_is_read_back_with_its_entities_resolved() {
        let xml =
            switchboard_media::twilio::twiml::say_and_hangup("Tom & Jerry's <offer> — “ok” é\n2");
        let twiml = parse(&xml).unwrap();
        assert_eq!(twiml.say, ["Tom & Jerry's <offer> — “ok” é\n2"]);
        assert!(twiml.hangup && twiml.stream.is_none());
        let two =
            parse("<Response><Say>One</Say><Say/><Say voice=\"alice\"> Two </Say></Response>")
                .unwrap();
        assert_eq!(two.say, ["One", "", "Two"]);
    }

    #[test]
    fn broken_or_rootless_documents_are_errors_not_panics() {
        for xml in [
            "",
            "<Response><Connect>",
            "<Foo/>",
            "<Response><Stream url=\"x\"",
            "\u{0}",
        ] {
            let _ = parse(xml);
        }
        assert!(parse("<Foo/>").is_err());
        assert!(parse("<Response><Connect><Stream/></Connect></Response>").is_err());
        assert!(parse("<Response></Wrong>").is_err());
        assert!(parse("<Response><Say>unclosed").is_err());
    }
}
