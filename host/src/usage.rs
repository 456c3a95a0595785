//! Usage reports (`GET /admin/usage`, `molten admin usage`, the per-skill figures of
//! `/admin/skills`). The store keeps running totals per day, user and skill as it logs each
//! answered message and skill call ([`Rollup`]), so a report reads one row per active user and
//! skill per day, never the logs themselves (on Azure Tables those grow to millions of rows).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::now_ms;

const DAY_MS: i64 = 86_400_000;
/// Duration buckets per doubling: a percentile is known to within 2^(1/4), about 19%.
const BUCKETS_PER_DOUBLING: f64 = 4.0;
/// How many users a report lists (the top ones by cost).
const TOP_USERS: usize = 20;
/// The days a report covers when `since` is not given.
const DEFAULT_DAYS: i64 = 30;

/// A UTC day, counted from 1970-01-01.
pub type Day = i64;

/// Today (UTC).
pub fn today() -> Day {
    now_ms().div_euclid(DAY_MS)
}

/// `YYYY-MM-DD`.
pub fn day_string(day: Day) -> String {
    let julian = i32::try_from(day + 2_440_588).unwrap_or(i32::MAX);
    time::Date::from_julian_day(julian).map_or_else(|_| day.to_string(), |d| d.to_string())
}

/// Reads `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<Day, String> {
    let bad = || format!("{text:?} is not a date; write it as YYYY-MM-DD, e.g. 2026-12-01");
    let mut parts = text.splitn(3, '-').map(str::parse::<u32>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let month = time::Month::try_from(u8::try_from(m).map_err(|_| bad())?).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(
        i32::try_from(y).map_err(|_| bad())?,
        month,
        u8::try_from(d).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    Ok(Day::from(date.to_julian_day()) - 2_440_588)
}

/// Running totals: of one user's answered messages (skill empty), or of one skill's calls by
/// one user, on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rollup {
    /// Answered messages with a model turn.
    pub messages: u64,
    /// Model calls (cache hits excluded).
    pub llm_calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// US dollars from the price table.
    pub cost_usd: f64,
    /// Skill calls.
    pub calls: u64,
    /// Skill calls that failed.
    pub failures: u64,
    /// Their summed duration.
    pub duration_ms: u64,
    /// How many calls took about 2^(i/4) ms, by i: what a percentile is read from.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub buckets: BTreeMap<u32, u64>,
}

impl Rollup {
    /// What one skill call of `duration` adds.
    pub fn of_call(duration: std::time::Duration, success: bool) -> Self {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self {
            calls: 1,
            failures: u64::from(!success),
            duration_ms: ms,
            buckets: BTreeMap::from([(bucket(ms), 1)]),
            ..Self::default()
        }
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Rollup) {
        self.messages += other.messages;
        self.llm_calls += other.llm_calls;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost_usd += other.cost_usd;
        self.calls += other.calls;
        self.failures += other.failures;
        self.duration_ms += other.duration_ms;
        for (bucket, count) in &other.buckets {
            *self.buckets.entry(*bucket).or_default() += count;
        }
    }

    /// The average skill call's duration.
    pub fn average_ms(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.duration_ms as f64 / self.calls as f64)
    }

    /// The duration 95% of skill calls took at most (the upper bound of the bucket it falls in).
    pub fn p95_ms(&self) -> Option<u64> {
        let total: u64 = self.buckets.values().sum();
        let wanted = total.saturating_mul(95).div_ceil(100);
        let mut seen = 0;
        for (bucket, count) in &self.buckets {
            seen += count;
            if seen >= wanted && total > 0 {
                return Some(bucket_upper(*bucket));
            }
        }
        None
    }
}

/// The bucket of a duration: the smallest i with `ms <= 2^(i/4)`.
fn bucket(ms: u64) -> u32 {
    if ms <= 1 {
        return 0;
    }
    ((ms as f64).log2() * BUCKETS_PER_DOUBLING).ceil() as u32
}

fn bucket_upper(bucket: u32) -> u64 {
    (f64::from(bucket) / BUCKETS_PER_DOUBLING).exp2().round() as u64
}

/// One stored row of running totals.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    /// The day.
    pub day: Day,
    /// Channel and user, as in [`crate::envelope::Envelope::user_key`].
    pub user: String,
    /// The skill; empty for the user's messages.
    pub skill: String,
    /// The totals.
    pub totals: Rollup,
}

/// What a report covers: days `since..=until`, optionally one user and one skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Only this user (channel:id).
    pub user: Option<String>,
    /// Only this skill (in the per-skill figures).
    pub skill: Option<String>,
    /// The first day.
    pub since: Day,
    /// The last day.
    pub until: Day,
}

impl Query {
    /// The query of `GET /admin/usage?user=&skill=&since=&until=` (dates `YYYY-MM-DD`; until
    /// defaults to today, since to 30 days before until).
    pub fn parse(params: &BTreeMap<String, String>) -> Result<Self, String> {
        let given = |name: &str| params.get(name).filter(|v| !v.is_empty());
        let until = given("until").map_or(Ok(today()), |d| parse_day(d))?;
        let since = given("since").map_or(Ok(until - (DEFAULT_DAYS - 1)), |d| parse_day(d))?;
        if since > until {
            return Err(format!(
                "since ({}) is after until ({})",
                day_string(since),
                day_string(until)
            ));
        }
        Ok(Self {
            user: given("user").cloned(),
            skill: given("skill").cloned(),
            since,
            until,
        })
    }
}

/// Messages, tokens and cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// Answered messages with a model turn.
    pub messages: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// US dollars.
    pub cost_usd: f64,
}

impl Spend {
    fn add(&mut self, totals: &Rollup) {
        self.messages += totals.messages;
        self.prompt_tokens += totals.prompt_tokens;
        self.completion_tokens += totals.completion_tokens;
        self.cost_usd += totals.cost_usd;
    }
}

/// One day of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayLine {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// What was spent.
    #[serde(flatten)]
    pub spend: Spend,
}

/// One user of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLine {
    /// channel:id.
    pub user: String,
    /// What they spent.
    #[serde(flatten)]
    pub spend: Spend,
}

/// One skill of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillLine {
    /// The skill.
    pub skill: String,
    /// Executions.
    pub calls: u64,
    /// Executions that failed.
    pub failures: u64,
    /// Share that succeeded, 0 to 1.
    pub success_rate: f64,
    /// Average duration.
    pub average_ms: f64,
    /// 95th percentile duration (to within 19%).
    pub p95_ms: u64,
}

impl SkillLine {
    fn new(skill: String, totals: &Rollup) -> Self {
        Self {
            skill,
            calls: totals.calls,
            failures: totals.failures,
            success_rate: if totals.calls == 0 {
                0.0
            } else {
                (totals.calls - totals.failures) as f64 / totals.calls as f64
            },
            average_ms: totals.average_ms().unwrap_or(0.0),
            p95_ms: totals.p95_ms().unwrap_or(0),
        }
    }
}

/// A usage report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The first day covered.
    pub since: String,
    /// The last day covered.
    pub until: String,
    /// The user it is limited to.
    pub user: Option<String>,
    /// Everything spent.
    pub total: Spend,
    /// Skill executions in all.
    pub skill_calls: u64,
    /// Skill executions that failed.
    pub skill_failures: u64,
    /// Per day with any spend, oldest first.
    pub days: Vec<DayLine>,
    /// The top users by cost.
    pub users: Vec<UserLine>,
    /// Per skill, most called first.
    pub skills: Vec<SkillLine>,
}

/// The report of `rows` (as [`crate::store::Store::rollups`] returned them for the query's
/// days) for `query`.
pub fn report(rows: &[RollupRow], query: &Query) -> Report {
    let mut days: BTreeMap<Day, Spend> = BTreeMap::new();
    let mut users: BTreeMap<&str, Spend> = BTreeMap::new();
    let mut skills: BTreeMap<&str, Rollup> = BTreeMap::new();
    let mut total = Spend::default();
    let mut all_calls = Rollup::default();
    let wanted = |row: &RollupRow| {
        (query.since..=query.until).contains(&row.day)
            && query.user.as_ref().is_none_or(|u| *u == row.user)
    };
    for row in rows.iter().filter(|r| wanted(r)) {
        if row.skill.is_empty() {
            days.entry(row.day).or_default().add(&row.totals);
            users.entry(&row.user).or_default().add(&row.totals);
            total.add(&row.totals);
        } else if query.skill.as_ref().is_none_or(|s| *s == row.skill) {
            skills.entry(&row.skill).or_default().add(&row.totals);
            all_calls.add(&row.totals);
        }
    }
    let mut users: Vec<UserLine> = users
        .into_iter()
        .map(|(user, spend)| UserLine {
            user: user.to_owned(),
            spend,
        })
        .collect();
    users.sort_by(|a, b| b.spend.cost_usd.total_cmp(&a.spend.cost_usd));
    users.truncate(TOP_USERS);
    let mut skills: Vec<SkillLine> = skills
        .into_iter()
        .map(|(skill, totals)| SkillLine::new(skill.to_owned(), &totals))
        .collect();
    skills.sort_by_key(|s| std::cmp::Reverse(s.calls));
    Report {
        since: day_string(query.since),
        until: day_string(query.until),
        user: query.user.clone(),
        total,
        skill_calls: all_calls.calls,
        skill_failures: all_calls.failures,
        days: days
            .into_iter()
            .map(|(day, spend)| DayLine {
                day: day_string(day),
                spend,
            })
            .collect(),
        users,
        skills,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_read_and_print_as_dates() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(parse_day("1970-01-02"), Ok(1));
        assert_eq!(day_string(parse_day("2026-12-02").unwrap()), "2026-12-02");
        for bad in ["2026-13-01", "2026-02-30", "yesterday", "2026-12", ""] {
            let error = parse_day(bad).unwrap_err();
            assert!(error.contains("YYYY-MM-DD"), "{error}");
        }
    }

    #[test]
    fn p95_is_within_a_bucket_of_the_truth() {
        let mut totals = Rollup::default();
        for ms in 1..=100u64 {
            totals.add(&Rollup::of_call(std::time::Duration::from_millis(ms), true));
        }
        let p95 = totals.p95_ms().unwrap();
        assert!((95..=113).contains(&p95), "p95 {p95}");
        assert_eq!(totals.average_ms(), Some(50.5));
        assert_eq!(Rollup::default().p95_ms(), None);
    }

    #[test]
    fn a_query_defaults_to_the_last_thirty_days_and_refuses_a_backwards_range() {
        let q = Query::parse(&BTreeMap::new()).unwrap();
        assert_eq!((q.until, q.until - q.since), (today(), 29));
        let params = |s: &str, u: &str| {
            BTreeMap::from([
                ("since".to_owned(), s.to_owned()),
                ("until".into(), u.into()),
            ])
        };
        assert!(Query::parse(&params("2026-12-02", "2026-12-01"))
            .unwrap_err()
            .contains("after"));
        assert_eq!(
            Query::parse(&params("2026-12-01", "2026-12-01"))
                .unwrap()
                .since,
            parse_day("2026-12-01").unwrap()
        );
    }

    #[test]
    fn a_report_adds_up_rows_by_day_user_and_skill() {
        let spend = |cost: f64| Rollup {
            messages: 1,
            prompt_tokens: 10,
            cost_usd: cost,
            ..Rollup::default()
        };
        let call = |ok: bool| Rollup::of_call(std::time::Duration::from_millis(4), ok);
        let row = |day, user: &str, skill: &str, totals| RollupRow {
            day,
            user: user.into(),
            skill: skill.into(),
            totals,
        };
        let rows = [
            row(10, "t:1", "", spend(0.5)),
            row(11, "t:1", "", spend(0.25)),
            row(11, "t:2", "", spend(1.0)),
            row(11, "t:2", "bash", call(true)),
            row(11, "t:1", "bash", call(false)),
            row(12, "t:1", "web_search", call(true)),
        ];
        let all = Query {
            user: None,
            skill: None,
            since: 10,
            until: 12,
        };
        let r = report(&rows, &all);
        assert_eq!(r.total.messages, 3);
        assert!((r.total.cost_usd - 1.75).abs() < 1e-12);
        assert_eq!(r.days.len(), 2);
        assert_eq!(r.days[1].spend.messages, 2);
        assert_eq!(r.users[0].user, "t:2", "the top user by cost comes first");
        assert_eq!((r.skill_calls, r.skill_failures), (3, 1));
        assert_eq!(r.skills[0].skill, "bash");
        assert_eq!((r.skills[0].calls, r.skills[0].success_rate), (2, 0.5));
        assert_eq!(r.skills[0].p95_ms, 4);
        let one = report(
            &rows,
            &Query {
                user: Some("t:1".into()),
                skill: Some("bash".into()),
                since: 11,
                until: 12,
            },
        );
        assert_eq!(one.total.messages, 1);
        assert_eq!(one.skills.len(), 1);
        assert_eq!((one.skills[0].calls, one.skills[0].failures), (1, 1));
    }
}
