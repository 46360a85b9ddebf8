//! The few TwiML documents Switchboard sends, built with strict XML escaping.

use std::fmt::Write as _;

const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// TwiML that connects the answered call to a bidirectional Media Stream at `url`.
///
/// Each `(name, value)` becomes a `<Parameter>`, delivered in `start.customParameters`.
pub fn connect_stream(url: &str, params: &[(&str, &str)]) -> String {
    let mut xml = String::with_capacity(128 + url.len() + params.len() * 48);
    xml.push_str(XML_DECLARATION);
    xml.push_str(r#"<Response><Connect><Stream url=""#);
    push_escaped(&mut xml, url);
    xml.push_str(r#"">"#);
    for (name, value) in params {
        xml.push_str(r#"<Parameter name=""#);
        push_escaped(&mut xml, name);
        xml.push_str(r#"" value=""#);
        push_escaped(&mut xml, value);
        xml.push_str(r#""/>"#);
    }
    xml.push_str("</Stream></Connect></Response>");
    xml
}

/// TwiML that speaks `text` with Twilio's text-to-speech, then hangs up.
pub fn say_and_hangup(text: &str) -> String {
    let mut xml = String::with_capacity(80 + text.len());
    xml.push_str(XML_DECLARATION);
    xml.push_str("<Response><Say>");
    push_escaped(&mut xml, text);
    xml.push_str("</Say><Hangup/></Response>");
    xml
}

/// Appends `text` escaped for both XML attribute values and element content.
///
/// Characters XML 1.0 forbids (most C0 controls) are dropped; tab, line feed and
/// carriage return are written as character references so attribute values keep them.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// XML 1.0 `Char` production (tab, LF and CR are handled by the caller).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_stream_carries_the_url_and_parameters() {
        let xml = connect_stream(
            "wss://sb.example/media/CA1",
            &[("call_id", "42"), ("token", "abc")],
        );
        assert_eq!(
            xml,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<Response><Connect><Stream url="wss://sb.example/media/CA1">"#,
                r#"<Parameter name="call_id" value="42"/>"#,
                r#"<Parameter name="token" value="abc"/>"#,
                "</Stream></Connect></Response>"
            )
        );
    }

    #[test]
    fn connect_stream_without_parameters_is_still_well_formed() {
        assert!(connect_stream("wss://h/p", &[]).ends_with(
            r#"<Response><Connect><Stream url="wss://h/p"></Stream></Connect></Response>"#
        ));
    }

    #[test]
    fn hostile_values_cannot_break_out_of_an_attribute() {
        let xml = connect_stream(
            r#"wss://h/p?a=1&b="2""#,
            &[(
                r#"x" evil="1"#,
                r#""/><Hangup/><Parameter name='y' value='&amp;'"#,
            )],
        );
        assert_eq!(
            xml,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<Response><Connect><Stream url="wss://h/p?a=1&amp;b=&quot;2&quot;">"#,
                r#"<Parameter name="x&quot; evil=&quot;1" "#,
                r#"value="&quot;/&gt;&lt;Hangup/&gt;&lt;Parameter name=&apos;y&apos; "#,
                r#"value=&apos;&amp;amp;&apos;"/>"#,
                "</Stream></Connect></Response>"
            )
        );
        assert_eq!(xml.matches("<Parameter").count(), 1);
        assert!(!xml.contains("<Hangup"));
    }

    #[test]
    fn control_characters_are_dropped_and_whitespace_is_kept_as_references() {
        let xml = connect_stream("wss://h/p", &[("k", "a\u{0}b\u{1b}c\td\ne")]);
        assert!(xml.contains(r#"value="abc&#9;d&#10;e""#), "{xml}");
    }

    #[test]
    fn say_and_hangup_escapes_the_text() {
        assert_eq!(
            say_and_hangup("Tom & Jerry's <offer>"),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                "<Response><Say>Tom &amp; Jerry&apos;s &lt;offer&gt;</Say>",
                "<Hangup/></Response>"
            )
        );
    }

    #[test]
    fn say_text_cannot_smuggle_verbs_or_control_characters() {
        let xml = say_and_hangup("Bye</Say><Dial>+15550100</Dial><Say>\u{7}\"x\"");
        assert_eq!(
            xml.matches('<').count(),
            6,
            "only the document's own tags: {xml}"
        );
        assert!(xml.contains("<Say>Bye&lt;/Say&gt;&lt;Dial&gt;+15550100&lt;/Dial&gt;&lt;Say&gt;&quot;x&quot;</Say>"), "{xml}");
    }

    #[test]
    fn non_ascii_text_passes_through() {
        assert!(say_and_hangup("مرحبا — ça va ✓").contains("<Say>مرحبا — ça va ✓</Say>"));
    }
}
