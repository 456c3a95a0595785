//! The one shape of an incoming chat message, whatever platform it came from. Ingress builds it,
//! the queue carries it as JSON, the worker answers it, a channel delivers the answer.

use serde::{Deserialize, Serialize};

/// A user's message and everything needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Where the answer goes.
    pub reply_to: ReplyTo,
    /// The conversation (session history is kept per channel and chat).
    pub chat: String,
    /// Who wrote (whose sandbox the skills work in).
    pub user: String,
    /// The platform's id of this message: Telegram `update_id`, Slack `ts`, Discord interaction
    /// id. With the channel it identifies a delivery for dedupe.
    pub message_id: String,
    /// What the user wrote.
    pub text: String,
    /// How often an operator sent it back from the poison queue (`POST
    /// /admin/poison/{id}/retry`): each retry is answered afresh, once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry: u32,
    /// The W3C `traceparent` of the webhook that queued it, so the turn joins its trace
    /// ([`crate::telemetry`]); none when traces are not exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The platform-specific address of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum ReplyTo {
    /// `sendMessage` to a chat, as a reply to a message.
    Telegram {
        /// The chat id.
        chat_id: i64,
        /// The message to reply to.
        message_id: i64,
    },
    /// `chat.postMessage` in a thread.
    Slack {
        /// The channel id.
        channel: String,
        /// The thread (the message's own `ts` starts one).
        thread_ts: String,
    },
    /// A follow-up message on a deferred interaction.
    Discord {
        /// The application the interaction belongs to.
        application_id: String,
        /// The interaction token (valid for 15 minutes).
        token: String,
    },
    /// The terminal of `molten chat`.
    Terminal,
}

impl ReplyTo {
    /// The channel's name, as used in keys and logs.
    pub fn channel(&self) -> &'static str {
        match self {
            ReplyTo::Telegram { .. } => "telegram",
            ReplyTo::Slack { .. } => "slack",
            ReplyTo::Discord { .. } => "discord",
            ReplyTo::Terminal => "terminal",
        }
    }
}

impl Envelope {
    /// Identifies this message across redeliveries and platform retries.
    pub fn dedupe_key(&self) -> String {
        let key = format!("{}:{}", self.reply_to.channel(), self.message_id);
        match self.retry {
            0 => key,
            n => format!("{key}#retry{n}"),
        }
    }

    /// Identifies the conversation for session history.
    pub fn session_key(&self) -> String {
        format!("{}:{}", self.reply_to.channel(), self.chat)
    }

    /// The user, qualified by channel, so equal ids on two platforms get two sandboxes.
    pub fn user_key(&self) -> String {
        format!("{}:{}", self.reply_to.channel(), self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_with_the_channel_tag() {
        let e = Envelope {
            reply_to: ReplyTo::Slack {
                channel: "C1".into(),
                thread_ts: "1.2".into(),
            },
            chat: "C1".into(),
            user: "U1".into(),
            message_id: "1.2".into(),
            text: "hi".into(),
            retry: 0,
            trace: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""platform":"slack""#), "{json}");
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), e);
        assert_eq!(e.dedupe_key(), "slack:1.2");
        assert_eq!(e.user_key(), "slack:U1");
    }
}
