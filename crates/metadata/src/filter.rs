//! The topic filter, with OpenMetadata's semantics.
//!
//! OpenMetadata matches each pattern with Python's `re.match(pattern, name,
//! re.IGNORECASE)`: anchored at the start of the name (not at its end) and
//! case-insensitive. A name must match one of the includes when there are any;
//! a name matching any exclude is always filtered out. The workflow may carry
//! two filters (the connection's and the source config's): a name must pass both.

use regex::Regex;

/// Include groups and excludes, compiled.
#[derive(Debug, Clone, Default)]
pub struct TopicFilter {
    /// A name must match a pattern of every group.
    include_groups: Vec<Vec<Regex>>,
    excludes: Vec<Regex>,
}

impl TopicFilter {
    /// Compiles the patterns; the error names the first pattern that is not a
    /// valid regular expression (`includes[i]` or `excludes[i]`) and why.
    pub fn new(includes: &[String], excludes: &[String]) -> Result<TopicFilter, (String, String)> {
        let includes = compile("includes", includes)?;
        let include_groups = if includes.is_empty() { Vec::new() } else { vec![includes] };
        Ok(TopicFilter { include_groups, excludes: compile("excludes", excludes)? })
    }

    /// A filter that admits what both `self` and `other` admit.
    pub fn and(mut self, other: TopicFilter) -> TopicFilter {
        self.include_groups.extend(other.include_groups);
        self.excludes.extend(other.excludes);
        self
    }

    /// Whether `name` passes the filter.
    pub fn admits(&self, name: &str) -> bool {
        self.include_groups.iter().all(|group| group.iter().any(|pattern| pattern.is_match(name)))
            && !self.excludes.iter().any(|pattern| pattern.is_match(name))
    }
}

fn compile(list: &str, patterns: &[String]) -> Result<Vec<Regex>, (String, String)> {
    patterns
        .iter()
        .enumerate()
        .map(|(index, pattern)| {
            Regex::new(&format!("(?i)^(?:{pattern})"))
                .map_err(|error| (format!("{list}[{index}]"), format!("`{pattern}` is not a valid regex: {error}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(includes: &[&str], excludes: &[&str]) -> TopicFilter {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        TopicFilter::new(&owned(includes), &owned(excludes)).expect("valid patterns")
    }

    #[test]
    fn openmetadata_semantics_table() {
        // (includes, excludes, name, admitted)
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "anything", true),
            (&["orders"], &[], "orders", true),
            (&["orders"], &[], "orders_v2", true),  // anchored at the start only
            (&["orders"], &[], "my_orders", false), // not a search
            (&["ORDERS"], &[], "orders", true),     // case-insensitive
            (&["orders$"], &[], "orders_v2", false),
            (&["a.*", "b.*"], &[], "beta", true), // any include
            (&["a.*", "b.*"], &[], "gamma", false),
            (&[], &["_confluent.*"], "_confluent-metrics", false),
            (&[], &["_confluent.*"], "x_confluent", true),
            (&["orders"], &["orders_test"], "orders_test_1", false), // exclude wins
            (&["orders"], &["orders_test"], "orders_prod", true),
            (&["dot\\.ted"], &[], "dot.ted", true),
            (&["dot\\.ted"], &[], "dotXted", false),
            (&["o|x"], &[], "xylophone", true), // alternation is grouped before anchoring
        ];
        for (includes, excludes, name, admitted) in cases {
            assert_eq!(filter(includes, excludes).admits(name), *admitted, "{includes:?} {excludes:?} {name}");
        }
    }

    #[test]
    fn two_filters_must_both_admit() {
        let both = filter(&["a"], &[]).and(filter(&["ab"], &["abc"]));
        assert!(both.admits("abd"));
        assert!(!both.admits("ax"));
        assert!(!both.admits("abc"));
    }

    #[test]
    fn a_bad_pattern_names_itself() {
        let error = TopicFilter::new(&["ok".into()], &["(unclosed".into()]).expect_err("invalid");
        assert_eq!(error.0, "excludes[0]");
        assert!(error.1.contains("(unclosed"), "{}", error.1);
    }
}
