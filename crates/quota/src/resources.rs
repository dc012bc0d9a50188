//! Resource lists (`map[ResourceName]Quantity`) and the arithmetic quota does on them:
//! adding and subtracting usage, masking to a set of names, comparing usage with hard
//! limits, and printing lists and names the way upstream's error messages do.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::{Format, Quantity};
use serde_json::Value;

/// A resource list: resource name to quantity, ordered by name.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Reads a resource list from JSON (an object of quantity strings or numbers);
/// entries that do not parse are skipped, absent or non-object input is empty.
pub fn parse_list(v: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    if let Some(m) = v.as_object() {
        for (k, q) in m {
            let parsed = match q {
                Value::String(s) => Quantity::parse(s.trim()).ok(),
                Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
                _ => None,
            };
            if let Some(q) = parsed {
                out.insert(k.clone(), q);
            }
        }
    }
    out
}

/// A resource list as JSON (quantities as their strings).
pub fn list_to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), Value::String(q.to_string())))
            .collect(),
    )
}

/// A quantity of `n` in the decimal SI format.
pub fn count(n: i64) -> Quantity {
    Quantity::new(n, Format::DecimalSI)
}

/// The zero quantity (decimal SI), printed `0`.
pub fn zero() -> Quantity {
    Quantity::new(0, Format::DecimalSI)
}

/// `a + b`, name by name (names of either side).
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, q) in b {
        match out.get_mut(k) {
            Some(v) => v.add(q),
            None => {
                out.insert(k.clone(), q.clone());
            }
        }
    }
    out
}

/// `a - b`, name by name (names of either side; names only in `b` come out
/// negative).
pub fn subtract(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, q) in b {
        match out.get_mut(k) {
            Some(v) => v.sub(q),
            None => {
                let mut n = q.clone();
                n.neg();
                out.insert(k.clone(), n);
            }
        }
    }
    out
}

/// `a - b` with negative results clamped to zero.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    subtract(a, b)
        .into_iter()
        .map(|(k, q)| if q.sign() < 0 { (k, zero()) } else { (k, q) })
        .collect()
}

/// The entries of `list` whose names are in `names`.
pub fn mask<S: AsRef<str>>(list: &ResourceList, names: &[S]) -> ResourceList {
    let set: BTreeSet<&str> = names.iter().map(AsRef::as_ref).collect();
    list.iter()
        .filter(|(k, _)| set.contains(k.as_str()))
        .map(|(k, q)| (k.clone(), q.clone()))
        .collect()
}

/// `list` without its zero entries.
pub fn remove_zeros(list: &ResourceList) -> ResourceList {
    list.iter()
        .filter(|(_, q)| !q.is_zero())
        .map(|(k, q)| (k.clone(), q.clone()))
        .collect()
}

/// The names of negative entries.
pub fn negative_names(list: &ResourceList) -> Vec<String> {
    list.iter()
        .filter(|(_, q)| q.sign() < 0)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Whether every entry of `a` is at most the entry of the same name in `b` (names
/// missing from `b` are unconstrained), and the names that are not.
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, Vec<String>) {
    let exceeded: Vec<String> = a
        .iter()
        .filter(|(k, q)| b.get(*k).is_some_and(|limit| *q > limit))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// Same names with equal values.
pub fn equals(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len() && a.iter().all(|(k, q)| b.get(k) == Some(q))
}

/// The names of a list.
pub fn names(list: &ResourceList) -> Vec<String> {
    list.keys().cloned().collect()
}

/// `name=quantity` pairs sorted by name, joined with commas (as quota errors print
/// lists).
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, q)| format!("{k}={q}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Names sorted and joined with commas.
pub fn pretty_print_names<S: AsRef<str>>(names: &[S]) -> String {
    let mut v: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    v.sort_unstable();
    v.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(v: Value) -> ResourceList {
        parse_list(&v)
    }

    #[test]
    fn arithmetic() {
        let a = list(json!({"cpu": "500m", "pods": "2"}));
        let b = list(json!({"cpu": "1", "memory": "1Gi"}));
        let sum = add(&a, &b);
        assert_eq!(pretty_print(&sum), "cpu=1500m,memory=1Gi,pods=2");
        let diff = subtract(&a, &b);
        assert_eq!(pretty_print(&diff), "cpu=-500m,memory=-1Gi,pods=2");
        assert_eq!(
            pretty_print(&subtract_non_negative(&a, &b)),
            "cpu=0,memory=0,pods=2"
        );
        assert_eq!(negative_names(&diff), ["cpu", "memory"]);
        assert_eq!(pretty_print(&mask(&sum, &["pods", "x"])), "pods=2");
        assert_eq!(
            pretty_print(&remove_zeros(&list(json!({"a": "0", "b": "1"})))),
            "b=1"
        );
        let (ok, exceeded) = less_than_or_equal(&sum, &list(json!({"cpu": "1", "pods": "3"})));
        assert!(!ok);
        assert_eq!(exceeded, ["cpu"]);
        assert!(equals(
            &list(json!({"cpu": "1000m"})),
            &list(json!({"cpu": "1"}))
        ));
        assert_eq!(pretty_print_names(&["pods", "cpu"]), "cpu,pods");
        assert_eq!(list_to_json(&sum)["cpu"], "1500m");
    }
}
