//! Chat templates: the Jinja program shipped in `tokenizer_config.json` (or
//! GGUF metadata) that turns a list of messages into the prompt text the model
//! was trained on, rendered with minijinja configured like Hugging Face's
//! `apply_chat_template` (trim_blocks, lstrip_blocks, Python string methods,
//! `raise_exception`, `strftime_now`).

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `origin` names the file it came from in errors.
    pub fn new(source: String, bos: String, eos: String, origin: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_function("strftime_now", |format: String| strftime_now(&format));
        env.add_template_owned("chat", source)
            .map_err(|e| Error::Template(format!("{origin}: {e:#}")))?;
        Ok(Self { env, bos, eos })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where
    /// the assistant's reply begins. `extra` adds template variables (for
    /// example `enable_thinking` for Qwen3).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Template(e.to_string()))?;
        let mut context = extra.clone();
        context.insert(
            "messages".into(),
            serde_json::to_value(messages).unwrap_or_default(),
        );
        context.insert("add_generation_prompt".into(), add_generation_prompt.into());
        context.insert("bos_token".into(), self.bos.clone().into());
        context.insert("eos_token".into(), self.eos.clone().into());
        template
            .render(Value::from_serialize(&context))
            .map_err(|e| Error::Template(format!("{e:#}")))
    }
}

/// The months' English names, January first.
pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Now (UTC) in the handful of `strftime` codes chat templates and run
/// names use: `%d %m %Y %y %b %B %H %M %S`.
pub fn strftime_now(format: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&name[..3]),
            Some('B') => out.push_str(name),
            Some('H') => out.push_str(&format!("{:02}", secs.rem_euclid(86_400) / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs.rem_euclid(3600) / 60)),
            Some('S') => out.push_str(&format!("{:02}", secs.rem_euclid(60))),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::QWEN25_CHAT_TEMPLATE as QWEN25;

    #[test]
    fn renders_qwen25_like_transformers() {
        let t = ChatTemplate::new(QWEN25.into(), String::new(), "<|im_end|>".into(), "test")
            .expect("compiles");
        let text = t
            .render(
                &[ChatMessage::user("Who wrote Dune?")],
                true,
                &Default::default(),
            )
            .expect("renders");
        assert_eq!(
            text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nWho wrote Dune?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn template_errors_name_their_origin() {
        let err = ChatTemplate::new(
            "{% if %}".into(),
            String::new(),
            String::new(),
            "tokenizer_config.json",
        )
        .expect_err("syntax error");
        assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
        let t = ChatTemplate::new(
            "{{ raise_exception('only user turns') }}".into(),
            String::new(),
            String::new(),
            "x",
        )
        .expect("compiles");
        let err = t
            .render(&[], false, &Default::default())
            .expect_err("raises");
        assert!(err.to_string().contains("only user turns"), "{err}");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
    }
}
