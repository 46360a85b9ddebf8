//! What a load run does: how many contacts, how callees answer, how long they talk, how
//! fast the carrier dials, how many calls to hold and for how long. Read from a TOML or
//! JSON file (every field optional, unknown fields refused), then overridden by flags.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::carrier::{AnswerMix, Millis};
use crate::driver::DriverError;

/// The whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Contacts imported and queued in the campaign.
    pub contacts: u64,
    /// Share of callees answering in person.
    pub human: f64,
    /// Share of answers by a machine.
    pub machine: f64,
    /// Share of busy lines.
    pub busy: f64,
    /// Share of calls nobody answers.
    pub no_answer: f64,
    /// Share of calls that fail.
    pub failed: f64,
    /// Ring time before the answer, ms: `[min, max]`, uniform.
    pub ring_ms: [u64; 2],
    /// How long an answered callee stays on the line, ms: `[min, max]`, uniform.
    /// Default: the whole run (calls are held until the end).
    pub talk_ms: Option<[u64; 2]>,
    /// Agent greeting delay after the stream starts, ms.
    pub greeting_delay_ms: u64,
    /// How long the agent streams audio after its greeting delay, ms (then it listens).
    /// Default: the whole run, so audio flows both ways all the time.
    pub agent_talk_ms: Option<u64>,
    /// Carrier calls per second; `None` or 0: unlimited.
    pub cps: Option<f64>,
    /// Seconds to reach `concurrency` (the campaign's calls-per-minute limit is set so
    /// that `concurrency` dials take this long); 0: as fast as the server dials.
    pub ramp_secs: u64,
    /// Live calls the campaign may hold at once.
    pub concurrency: u32,
    /// Seconds the run lasts after the campaign starts.
    pub duration_secs: u64,
    /// Database of a server the driver starts: `sqlite://FILE` or `postgres://…/DB` (an
    /// existing database; migrations are applied). Default: a fresh SQLite file in the
    /// run's directory.
    pub database_url: Option<String>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            contacts: 100,
            human: 1.0,
            machine: 0.0,
            busy: 0.0,
            no_answer: 0.0,
            failed: 0.0,
            ring_ms: [500, 1_500],
            talk_ms: None,
            greeting_delay_ms: 200,
            agent_talk_ms: None,
            cps: None,
            ramp_secs: 0,
            concurrency: 100,
            duration_secs: 60,
            database_url: None,
        }
    }
}

impl Scenario {
    /// Reads a `.toml` or `.json` file (by extension; anything else is read as TOML).
    pub fn load(path: &Path) -> Result<Scenario, DriverError> {
        let text = std::fs::read_to_string(path).map_err(|source| DriverError::Io {
            what: format!("reading scenario {}", path.display()),
            source,
        })?;
        let invalid = |reason: String| DriverError::Scenario {
            path: path.display().to_string(),
            reason,
        };
        let scenario: Scenario = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| invalid(e.to_string()))?
        };
        scenario.check().map_err(invalid)?;
        Ok(scenario)
    }

    /// Refuses values that cannot make a run, naming the field.
    pub fn check(&self) -> Result<(), String> {
        let shares = [
            ("human", self.human),
            ("machine", self.machine),
            ("busy", self.busy),
            ("no_answer", self.no_answer),
            ("failed", self.failed),
        ];
        if let Some((name, value)) = shares.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            return Err(format!("{name} must be a share >= 0, not {value}"));
        }
        if shares.iter().map(|(_, v)| v).sum::<f64>() <= 0.0 {
            return Err("human, machine, busy, no_answer and failed are all 0".to_owned());
        }
        if self.contacts == 0 {
            return Err("contacts must be at least 1".to_owned());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".to_owned());
        }
        if self.duration_secs == 0 {
            return Err("duration_secs must be at least 1".to_owned());
        }
        if let Some(cps) = self.cps
            && (!cps.is_finite() || cps < 0.0)
        {
            return Err(format!("cps must be >= 0, not {cps}"));
        }
        Ok(())
    }

    /// The carrier's answer mix.
    pub fn mix(&self) -> AnswerMix {
        AnswerMix {
            human: self.human,
            machine: self.machine,
            busy: self.busy,
            no_answer: self.no_answer,
            failed: self.failed,
        }
    }

    /// Ring time draw.
    pub fn ring(&self) -> Millis {
        let [min, max] = self.ring_ms;
        Millis::Uniform { min, max }
    }

    /// Talk time draw: the run's length plus a margin unless given.
    pub fn talk(&self) -> Millis {
        match self.talk_ms {
            Some([min, max]) => Millis::Uniform { min, max },
            None => Millis::Fixed(self.duration_secs.saturating_add(60) * 1_000),
        }
    }

    /// Carrier calls per second, `None` for no limit.
    pub fn carrier_cps(&self) -> Option<f64> {
        self.cps.filter(|cps| *cps > 0.0)
    }

    /// The campaign's dials-per-minute limit that spreads `concurrency` dials over
    /// `ramp_secs`; `None` for no limit.
    pub fn calls_per_minute(&self) -> Option<u64> {
        (self.ramp_secs > 0).then(|| (u64::from(self.concurrency) * 60).div_ceil(self.ramp_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_scenario_overrides_only_what_it_names() {
        let dir = std::env::temp_dir().join(format!("scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hold.toml");
        std::fs::write(
            &path,
            "contacts = 1000\nconcurrency = 1000\nramp_secs = 20\nbusy = 0.1\n",
        )
        .unwrap();
        let scenario = Scenario::load(&path).unwrap();
        assert_eq!((scenario.contacts, scenario.concurrency), (1000, 1000));
        assert_eq!(scenario.calls_per_minute(), Some(3000));
        assert_eq!(
            scenario.greeting_delay_ms,
            Scenario::default().greeting_delay_ms
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unknown_field_or_a_bad_value_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("scenario-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.json");
        std::fs::write(&path, r#"{"contacts": 10, "concurency": 5}"#).unwrap();
        let error = Scenario::load(&path).unwrap_err().to_string();
        assert!(error.contains("concurency"), "{error}");
        std::fs::write(&path, r#"{"busy": -1}"#).unwrap();
        let error = Scenario::load(&path).unwrap_err().to_string();
        assert!(error.contains("busy"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
