//! Script templates: the text an agent receives, personalized per contact with
//! placeholders such as `{name}`, `{attributes.address.city}`, `{vars.offer}` or
//! `{name|there}` (an inline fallback). `{{` and `}}` are literal braces.
//!
//! Everything is bounded, because a template is tenant input rendered on the server: a
//! template is at most [`MAX_TEMPLATE_BYTES`], a variable or fallback value at most
//! [`MAX_VALUE_BYTES`] (and at most [`MAX_VARIABLES`] of them), and a rendering stops at
//! [`MAX_RENDERED_BYTES`] whatever the contact's attributes hold: many copies of one large
//! variable cannot ask the server for gigabytes.

use crate::contact::Contact;
use serde_json::Value;
use std::collections::BTreeMap;

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;
/// Longest campaign variable or fallback value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4 * 1024;
/// Most campaign variables (and, separately, fallbacks) a script may define.
pub const MAX_VARIABLES: usize = 100;
/// Longest rendered text, in bytes: what an agent receives as its script.
pub const MAX_RENDERED_BYTES: usize = 32 * 1024;

/// Checks the sizes of a script's variables (or fallbacks): their number, each key and
/// each value. Returns the problems as (field suffix, reason), e.g. `("offer", "…")`.
pub fn check_values(values: &BTreeMap<String, String>) -> Vec<(Option<String>, String)> {
    let mut problems = Vec::new();
    if values.len() > MAX_VARIABLES {
        problems.push((
            None,
            format!("{} entries: at most {MAX_VARIABLES} allowed", values.len()),
        ));
    }
    for (key, value) in values {
        if key.len() > 128 {
            problems.push((
                None,
                format!("a key is {} bytes long: at most 128 allowed", key.len()),
            ));
        }
        if value.len() > MAX_VALUE_BYTES {
            problems.push((
                Some(key.clone()),
                format!(
                    "the value is {} bytes long: at most {MAX_VALUE_BYTES} allowed",
                    value.len()
                ),
            ));
        }
    }
    problems
}

/// Why a template could not be parsed; `at` is a byte offset into the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is longer than [`MAX_TEMPLATE_BYTES`].
    #[error("the template is {len} bytes long: at most {max} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `{` with no matching `}` (or another `{` before it).
    #[error("unclosed `{{` at byte {at}")]
    Unclosed {
        /// Offset of the `{`.
        at: usize,
    },
    /// `{}` or `{|fallback}`.
    #[error("empty placeholder at byte {at}")]
    EmptyPlaceholder {
        /// Offset of the `{`.
        at: usize,
    },
    /// A character other than `[A-Za-z0-9_.]` in a placeholder name.
    #[error("invalid character `{ch}` in placeholder `{placeholder}` at byte {at}")]
    InvalidCharacter {
        /// The offending character.
        ch: char,
        /// The placeholder name as written.
        placeholder: String,
        /// Offset of the character.
        at: usize,
    },
    /// A name with an empty dotted segment: `a..b`, `.a`, `a.`.
    #[error("empty segment in placeholder `{placeholder}` at byte {at}")]
    EmptySegment {
        /// The placeholder name as written.
        placeholder: String,
        /// Offset of the `{`.
        at: usize,
    },
    /// `{vars}` or `{attributes}` alone, with no key after the prefix.
    #[error("placeholder `{placeholder}` at byte {at} needs a key, as in `{{{placeholder}.key}}`")]
    MissingKey {
        /// The placeholder name as written.
        placeholder: String,
        /// Offset of the `{`.
        at: usize,
    },
    /// A `}` that closes nothing; write `}}` for a literal brace.
    #[error("stray `}}` at byte {at} (write `}}}}` for a literal brace)")]
    StrayClose {
        /// Offset of the `}`.
        at: usize,
    },
}

/// Where a placeholder takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A contact column (`name`, `email`, ...) or, for any other name, an attribute path
    /// (`unit_type`, `address.city`), resolved by [`Contact::field`].
    Field(Vec<String>),
    /// An explicit attribute path (`attributes.unit_type`, prefix stripped): never a column.
    Attribute(Vec<String>),
    /// A campaign variable (`vars.offer`): the key after `vars.`.
    Var(String),
}

/// One `{...}` in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The name as written, e.g. `attributes.address.city`; what `missing` reports.
    pub name: String,
    /// Where the value comes from.
    pub source: Source,
    /// Inline fallback (`{name|there}`); `Some("")` renders nothing without reporting.
    pub fallback: Option<String>,
    /// Byte offset of the `{`.
    pub at: usize,
}

impl Placeholder {
    /// The name without a redundant `attributes.` prefix: `{unit_type}` and
    /// `{attributes.unit_type}` share the key `unit_type` in campaign fallbacks.
    pub fn key(&self) -> String {
        match &self.source {
            Source::Attribute(path) => path.join("."),
            _ => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(usize),
}

/// A parsed script template; once it exists it renders without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    placeholders: Vec<Placeholder>,
}

/// A rendered template and the placeholders that had no value at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The personalized text.
    pub text: String,
    /// Placeholder names (as written, first occurrence order, no duplicates) that rendered
    /// as empty text because neither the contact, an inline fallback nor a campaign
    /// fallback had a value.
    pub missing: Vec<String>,
    /// Whether the text was cut at [`MAX_RENDERED_BYTES`].
    pub truncated: bool,
}

impl Template {
    /// Parses a template, naming the byte offset and the problem on failure.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLong {
                len: source.len(),
                max: MAX_TEMPLATE_BYTES,
            });
        }
        let mut parts = Vec::new();
        let mut placeholders = Vec::new();
        let mut text = String::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    text.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    text.push('}');
                    i += 2;
                }
                b'}' => return Err(TemplateError::StrayClose { at: i }),
                b'{' => {
                    let rest = &source[i + 1..];
                    let close = rest.find('}').ok_or(TemplateError::Unclosed { at: i })?;
                    let body = &rest[..close];
                    if body.contains('{') {
                        return Err(TemplateError::Unclosed { at: i });
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Slot(placeholders.len()));
                    placeholders.push(parse_placeholder(body, i)?);
                    i += close + 2;
                }
                _ => {
                    // Copy the whole run up to the next brace; braces are ASCII, so the
                    // slice boundaries are always char boundaries.
                    let end = source[i..].find(['{', '}']).map_or(source.len(), |n| i + n);
                    text.push_str(&source[i..end]);
                    i = end;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
            placeholders,
        })
    }

    /// The template text as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Every placeholder, in order of appearance (repeats included).
    pub fn placeholders(&self) -> &[Placeholder] {
        &self.placeholders
    }

    /// Renders for one contact. A value comes from the contact (or `vars` for
    /// `{vars.key}`), else the inline fallback, else `fallbacks` (by name as written, then
    /// by [`Placeholder::key`]); otherwise it renders empty and is listed in `missing`.
    /// The text stops at [`MAX_RENDERED_BYTES`] (on a character boundary), `truncated` set.
    pub fn render(
        &self,
        contact: &Contact,
        vars: &BTreeMap<String, String>,
        fallbacks: &BTreeMap<String, String>,
    ) -> Rendered {
        let mut text = String::with_capacity(self.source.len());
        let mut missing: Vec<String> = Vec::new();
        let mut truncated = false;
        for part in &self.parts {
            let p = match part {
                Part::Text(t) => {
                    truncated |= !push_bounded(&mut text, t);
                    continue;
                }
                Part::Slot(n) => &self.placeholders[*n],
            };
            let value = resolve(p, contact, vars)
                .or_else(|| p.fallback.clone())
                .or_else(|| fallbacks.get(&p.name).cloned())
                .or_else(|| fallbacks.get(&p.key()).cloned());
            match value {
                Some(v) => truncated |= !push_bounded(&mut text, &v),
                None if missing.contains(&p.name) => {}
                None => missing.push(p.name.clone()),
            }
        }
        Rendered {
            text,
            missing,
            truncated,
        }
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Appends as much of `value` as fits under [`MAX_RENDERED_BYTES`]; false if cut.
fn push_bounded(text: &mut String, value: &str) -> bool {
    let room = MAX_RENDERED_BYTES.saturating_sub(text.len());
    if value.len() <= room {
        text.push_str(value);
        return true;
    }
    let mut end = room;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    text.push_str(&value[..end]);
    false
}

/// Parses the text between `{` (at byte `at`) and `}`.
fn parse_placeholder(body: &str, at: usize) -> Result<Placeholder, TemplateError> {
    let (name, fallback) = match body.split_once('|') {
        Some((name, fallback)) => (name, Some(fallback.to_owned())),
        None => (body, None),
    };
    if name.is_empty() {
        return Err(TemplateError::EmptyPlaceholder { at });
    }
    if let Some((offset, ch)) = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
    {
        return Err(TemplateError::InvalidCharacter {
            ch,
            placeholder: name.to_owned(),
            at: at + 1 + offset,
        });
    }
    let path: Vec<String> = name.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(TemplateError::EmptySegment {
            placeholder: name.to_owned(),
            at,
        });
    }
    let source = match path.split_first() {
        Some((first, rest)) if first == "vars" || first == "attributes" => {
            if rest.is_empty() {
                return Err(TemplateError::MissingKey {
                    placeholder: name.to_owned(),
                    at,
                });
            }
            if first == "vars" {
                Source::Var(rest.join("."))
            } else {
                Source::Attribute(rest.to_vec())
            }
        }
        _ => Source::Field(path),
    };
    Ok(Placeholder {
        name: name.to_owned(),
        source,
        fallback,
        at,
    })
}

/// The contact's (or campaign's) value for a placeholder; `None` when absent or empty.
fn resolve(p: &Placeholder, contact: &Contact, vars: &BTreeMap<String, String>) -> Option<String> {
    let value = match &p.source {
        Source::Var(key) => return vars.get(key).filter(|v| !v.is_empty()).cloned(),
        Source::Field(path) => contact.field(path)?,
        Source::Attribute(path) => {
            let (first, rest) = path.split_first()?;
            let mut current = contact.attributes.get(first)?;
            for key in rest {
                current = current.as_object()?.get(key)?;
            }
            current.clone()
        }
    };
    Some(value_text(&value)).filter(|t| !t.is_empty())
}

/// How a JSON value reads in a script: strings bare, arrays comma-separated, null empty.
fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(value_text)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContactId, E164, TenantId};
    use serde_json::json;

    const SEED_PROMPT: &str = "Hello {name}, this is Sarah from our sales team. I'm calling \
        about your recent inquiry regarding our services. I noticed you provided {email} as \
        your contact information. Is this a good time to discuss how we can help your \
        business grow?";

    fn contact(email: Option<&str>, attributes: Value) -> Contact {
        Contact {
            id: ContactId(1),
            tenant_id: TenantId(1),
            phone: E164::parse("+14155550123", None).unwrap(),
            name: Some("Ada Lovelace".into()),
            email: email.map(str::to_owned),
            company: None,
            timezone: Some("America/New_York".into()),
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            consent_at: None,
            opted_out_at: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn none() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn render(source: &str, c: &Contact) -> Rendered {
        Template::parse(source).unwrap().render(c, &none(), &none())
    }

    #[test]
    fn the_seed_prompt_renders_for_a_full_contact() {
        let r = render(SEED_PROMPT, &contact(Some("ada@example.com"), json!({})));
        assert!(r.text.starts_with("Hello Ada Lovelace, this is Sarah"));
        assert!(
            r.text
                .contains("you provided ada@example.com as your contact")
        );
        assert!(r.missing.is_empty());
    }

    #[test]
    fn the_seed_prompt_reports_email_missing_for_a_contact_without_email() {
        let r = render(SEED_PROMPT, &contact(None, json!({})));
        assert!(r.text.contains("you provided  as your contact"));
        assert_eq!(r.missing, vec!["email"]);
    }

    #[test]
    fn columns_bare_attributes_nested_attributes_and_phone_resolve() {
        let c = contact(
            None,
            json!({"unit_type": "villa", "address": {"city": "Riyadh"}, "name": "attr"}),
        );
        let r = render(
            "{phone} {timezone} {unit_type} {attributes.unit_type} {address.city} {attributes.address.city} {attributes.name}",
            &c,
        );
        assert_eq!(
            r.text,
            "+14155550123 America/New_York villa villa Riyadh Riyadh attr"
        );
        assert!(r.missing.is_empty());
    }

    #[test]
    fn numbers_bools_arrays_and_null_render_as_documented() {
        let c = contact(
            None,
            json!({"n": 1000000, "f": 2.5, "b": true, "a": ["mlaqa", "taadhi", 3], "z": null, "e": "", "ea": []}),
        );
        let r = render("{n}|{f}|{b}|{a}|{z}|{e}|{ea}", &c);
        assert_eq!(r.text, "1000000|2.5|true|mlaqa, taadhi, 3|||");
        assert_eq!(r.missing, vec!["z", "e", "ea"]);
    }

    #[test]
    fn inline_fallback_wins_over_campaign_fallbacks_and_both_prevent_missing() {
        let c = contact(None, json!({}));
        let t =
            Template::parse("Hi {email|friend}, {company}, {attributes.city}, {gone|}.").unwrap();
        let fallbacks = map(&[
            ("email", "unused"),
            ("company", "your company"),
            ("city", "your city"),
        ]);
        let r = t.render(&c, &none(), &fallbacks);
        assert_eq!(r.text, "Hi friend, your company, your city, .");
        assert!(r.missing.is_empty());
    }

    #[test]
    fn campaign_variables_resolve_then_fall_back_then_go_missing() {
        let c = contact(None, json!({}));
        let t = Template::parse("{vars.offer} {vars.agent|Sarah} {vars.none} {vars.none}").unwrap();
        let r = t.render(&c, &map(&[("offer", "20% off")]), &none());
        assert_eq!(r.text, "20% off Sarah  ");
        assert_eq!(r.missing, vec!["vars.none"]);
        let r = t.render(
            &c,
            &none(),
            &map(&[("vars.offer", "a deal"), ("vars.none", "x")]),
        );
        assert_eq!(r.text, "a deal Sarah x x");
    }

    #[test]
    fn double_braces_are_literal_braces() {
        let c = contact(None, json!({}));
        let r = render("{{name}} is {name} }} {{", &c);
        assert_eq!(r.text, "{name} is Ada Lovelace } {");
        let t = Template::parse("{{{name}}}").unwrap();
        assert_eq!(t.render(&c, &none(), &none()).text, "{Ada Lovelace}");
    }

    #[test]
    fn placeholders_are_listed_in_order_with_their_sources() {
        let t = Template::parse("{name} {vars.x} {attributes.a.b|z} {unit}").unwrap();
        let names: Vec<_> = t.placeholders().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["name", "vars.x", "attributes.a.b", "unit"]);
        assert_eq!(t.placeholders()[1].source, Source::Var("x".into()));
        assert_eq!(
            t.placeholders()[2].source,
            Source::Attribute(vec!["a".into(), "b".into()])
        );
        assert_eq!(t.placeholders()[2].fallback.as_deref(), Some("z"));
        assert_eq!(t.placeholders()[2].key(), "a.b");
        assert_eq!(t.placeholders()[3].at, 35);
    }

    #[test]
    fn an_unclosed_brace_names_its_byte() {
        assert_eq!(
            Template::parse("Hello there, {name"),
            Err(TemplateError::Unclosed { at: 13 })
        );
        assert_eq!(
            Template::parse("{a {b}"),
            Err(TemplateError::Unclosed { at: 0 })
        );
        assert_eq!(
            Template::parse("x{").unwrap_err().to_string(),
            "unclosed `{` at byte 1"
        );
    }

    #[test]
    fn an_empty_placeholder_is_refused() {
        assert_eq!(
            Template::parse("a {} b"),
            Err(TemplateError::EmptyPlaceholder { at: 2 })
        );
        assert_eq!(
            Template::parse("{|x}"),
            Err(TemplateError::EmptyPlaceholder { at: 0 })
        );
    }

    #[test]
    fn an_invalid_character_names_the_character_the_placeholder_and_its_byte() {
        let e = Template::parse("Hi {na$me}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid character `$` in placeholder `na$me` at byte 6"
        );
        assert!(matches!(
            Template::parse("{ name }"),
            Err(TemplateError::InvalidCharacter { ch: ' ', at: 1, .. })
        ));
        assert!(matches!(
            Template::parse("{né}"),
            Err(TemplateError::InvalidCharacter {
                ch: 'é', at: 2, ..
            })
        ));
    }

    #[test]
    fn empty_segments_and_bare_prefixes_are_refused() {
        for bad in ["{a..b}", "{.a}", "{a.}"] {
            assert!(
                matches!(
                    Template::parse(bad),
                    Err(TemplateError::EmptySegment { .. })
                ),
                "{bad}"
            );
        }
        let e = Template::parse("{vars}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "placeholder `vars` at byte 0 needs a key, as in `{vars.key}`"
        );
        assert!(matches!(
            Template::parse("{attributes|x}"),
            Err(TemplateError::MissingKey { .. })
        ));
    }

    #[test]
    fn a_stray_closing_brace_is_refused() {
        let e = Template::parse("Hello name}").unwrap_err();
        assert_eq!(e, TemplateError::StrayClose { at: 10 });
        assert_eq!(
            e.to_string(),
            "stray `}` at byte 10 (write `}}` for a literal brace)"
        );
    }

    #[test]
    fn multibyte_text_around_placeholders_is_kept_intact() {
        let c = contact(None, json!({}));
        let r = render("مرحبا {name} — ça va? 👋", &c);
        assert_eq!(r.text, "مرحبا Ada Lovelace — ça va? 👋");
        assert_eq!(
            Template::parse("é}"),
            Err(TemplateError::StrayClose { at: 2 })
        );
    }

    #[test]
    fn an_empty_template_renders_empty() {
        let r = render("", &contact(None, json!({})));
        assert_eq!(
            r,
            Rendered {
                text: String::new(),
                missing: vec![],
                truncated: false
            }
        );
    }

    #[test]
    fn a_template_over_its_size_limit_is_refused() {
        let long = "a".repeat(MAX_TEMPLATE_BYTES + 1);
        assert_eq!(
            Template::parse(&long),
            Err(TemplateError::TooLong {
                len: MAX_TEMPLATE_BYTES + 1,
                max: MAX_TEMPLATE_BYTES
            })
        );
        assert!(Template::parse(&long[1..]).is_ok());
    }

    #[test]
    fn many_copies_of_a_large_value_render_no_more_than_the_limit() {
        // 1,800 placeholders (16 KiB of template) with a 4 KiB value asks for 7 MB.
        let source = "{vars.a}".repeat(MAX_TEMPLATE_BYTES / 9);
        let template = Template::parse(&source).unwrap();
        let vars = BTreeMap::from([("a".to_owned(), "é".repeat(MAX_VALUE_BYTES / 2))]);
        let r = template.render(&contact(None, json!({})), &vars, &BTreeMap::new());
        assert!(r.truncated);
        assert!(r.text.len() <= MAX_RENDERED_BYTES);
        assert!(
            r.text.len() > MAX_RENDERED_BYTES - 2,
            "cut on a char boundary, not before"
        );
        let short = Template::parse("{vars.a}").unwrap();
        let r = short.render(&contact(None, json!({})), &vars, &BTreeMap::new());
        assert!(!r.truncated);
    }

    #[test]
    fn variables_are_bounded_in_number_and_size() {
        let mut vars: BTreeMap<String, String> = (0..MAX_VARIABLES)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(check_values(&vars).is_empty());
        vars.insert("big".into(), "x".repeat(MAX_VALUE_BYTES + 1));
        let problems = check_values(&vars);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[1].0.as_deref(), Some("big"));
    }
}
