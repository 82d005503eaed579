//! The phases of a training run or demonstration, by one name each: the
//! label the store, the events, the charts and the reports use ("round 2"),
//! and the folder its files go to ("round-2").

use std::fmt;

use exsearch_agent::Method;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Phase {
    /// The model a run starts from, before any training.
    Start,
    /// The untrained model answering with one method (direct, RAG or
    /// ExSearch): the baselines of a real-model demonstration.
    ZeroShot(Method),
    /// Language modelling on documents before warm-up (the demonstration).
    Reading,
    /// Supervised training on written trajectories.
    Warmup,
    /// EM round `n`, from 1.
    Round(usize),
    /// The warmed-up model given the EM rounds' optimizer steps as more
    /// warm-up: what the rounds are measured against.
    Control,
}

impl Phase {
    /// The name in the store, the events and the reports.
    pub fn label(self) -> String {
        match self {
            Self::Start => "start".into(),
            Self::ZeroShot(method) => format!("zero-shot {method}"),
            Self::Reading => "reading".into(),
            Self::Warmup => "warm-up".into(),
            Self::Round(n) => format!("round {n}"),
            Self::Control => "control".into(),
        }
    }

    /// The folder (and adapter-name suffix) of the phase's files.
    pub fn folder(self) -> String {
        self.label().replace(' ', "-")
    }

    pub fn parse(label: &str) -> Option<Self> {
        Some(match label {
            "start" => Self::Start,
            "reading" => Self::Reading,
            "warm-up" => Self::Warmup,
            "control" => Self::Control,
            other if other.starts_with("zero-shot ") => {
                Self::ZeroShot(other["zero-shot ".len()..].parse().ok()?)
            }
            other => Self::Round(
                other
                    .strip_prefix("round ")?
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)?,
            ),
        })
    }

    /// The EM round's number.
    pub fn round(self) -> Option<usize> {
        match self {
            Self::Round(n) => Some(n),
            _ => None,
        }
    }

    /// Where the phase sits on a chart's round axis: 0 before the EM rounds.
    pub fn round_axis(self) -> Option<usize> {
        match self {
            Self::Start | Self::Warmup => Some(0),
            Self::Round(n) => Some(n),
            Self::ZeroShot(_) | Self::Reading | Self::Control => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.label())
    }
}

impl From<Phase> for String {
    fn from(p: Phase) -> Self {
        p.label()
    }
}

impl TryFrom<String> for Phase {
    type Error = String;
    fn try_from(label: String) -> std::result::Result<Self, String> {
        Self::parse(&label).ok_or_else(|| format!("unknown training phase `{label}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_folders_round_trip() {
        for p in [
            Phase::Start,
            Phase::Reading,
            Phase::Warmup,
            Phase::Round(1),
            Phase::Round(12),
            Phase::Control,
            Phase::ZeroShot(Method::Rag),
            Phase::ZeroShot(Method::Exsearch),
        ] {
            assert_eq!(Phase::parse(&p.label()), Some(p));
            let json = serde_json::to_string(&p).expect("json");
            assert_eq!(serde_json::from_str::<Phase>(&json).expect("phase"), p);
        }
        assert_eq!(Phase::Round(2).label(), "round 2");
        assert_eq!(Phase::Round(2).folder(), "round-2");
        assert_eq!(Phase::Warmup.folder(), "warm-up");
        assert_eq!(Phase::ZeroShot(Method::Direct).label(), "zero-shot direct");
        assert_eq!(Phase::parse("zero-shot guess"), None);
        assert_eq!(Phase::parse("round 0"), None);
        assert_eq!(Phase::parse("round-2"), None);
        assert!(serde_json::from_str::<Phase>("\"later\"").is_err());
    }
}
