//! Strategic merge patch (`application/strategic-merge-patch+json`), with
//! upstream's semantics and error messages.
//!
//! [`apply_strategic_patch`] applies a patch to an object: objects merge
//! recursively, `null` deletes a key, lists whose field has patch strategy
//! `merge` merge by `patchMergeKey` (or as sets, for lists of scalars), other
//! lists are replaced. The directives `$patch: replace|delete` (in objects),
//! `$patch: replace|delete` (in list items), `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` are
//! honoured. [`create_two_way_patch`] computes the patch that turns one
//! object into another.
//!
//! Values the patch brings where the original has nothing to merge them
//! with (a missing key, a value of another kind, a new list item, the body
//! of a `$patch: replace` map) are taken as they are, minus `null` object
//! members and directives: objects carrying `$patch` vanish, and
//! `$retainKeys`, `$setElementOrder/…` and `$deleteFromPrimitiveList/…` keys
//! are dropped. Upstream discards the nulls and `$patch` objects the same
//! way and leaves the other directive keys for decoding into Go structs to
//! drop; here objects stay JSON, so they are dropped at once. A
//! `$deleteFromPrimitiveList` for a list the original lacks does nothing.

mod diff;
mod patch;

use thiserror::Error;

pub use diff::create_two_way_patch;
pub use patch::apply_strategic_patch;

use crate::schema::{TypeDef, TypeGraph, TypeId};

/// A strategic merge patch that cannot be applied or computed. The
/// `Display` text is upstream's message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatchError {
    /// The patch body is not a JSON object (upstream's JSON decoding error).
    #[error("json: cannot unmarshal {0} into Go value of type map[string]interface {{}}")]
    NotAnObject(&'static str),
    /// `invalid JSON document`.
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// A `$deleteFromPrimitiveList` directive is malformed.
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// A `$retainKeys` directive is malformed or does not cover the patch.
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// A `$setElementOrder` directive is malformed.
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// A list holds lists.
    #[error("lists of lists are not supported")]
    NoListOfLists,
    /// Any other failure (missing merge key, bad `$patch` value, mismatched
    /// element types, ...), with upstream's message.
    #[error("{0}")]
    Other(String),
}

impl PatchError {
    /// The HTTP status the apiserver answers with: 400 for malformed
    /// directives and documents, 422 for lists of lists, 500 for the rest
    /// (upstream passes those through as plain errors).
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::NotAnObject(_)
            | PatchError::BadJsonDoc
            | PatchError::BadPatchFormatForPrimitiveList
            | PatchError::BadPatchFormatForRetainKeys
            | PatchError::BadPatchFormatForSetElementOrderList => 400,
            PatchError::NoListOfLists => 422,
            PatchError::Other(_) => 500,
        }
    }
}

pub(crate) const DIRECTIVE_MARKER: &str = "$patch";
pub(crate) const DELETE_DIRECTIVE: &str = "delete";
pub(crate) const REPLACE_DIRECTIVE: &str = "replace";
pub(crate) const MERGE_DIRECTIVE: &str = "merge";
pub(crate) const RETAIN_KEYS_STRATEGY: &str = "retainKeys";
pub(crate) const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
pub(crate) const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
pub(crate) const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// Patch metadata of one key of an object of type `ty`: the value's type,
/// its patch strategies and merge key. Keys unknown to the schema are
/// untyped with no strategy.
pub(crate) struct PatchMeta {
    pub ty: TypeId,
    pub strategies: Vec<String>,
    pub merge_key: String,
}

pub(crate) fn lookup_patch_meta(g: &TypeGraph, ty: TypeId, key: &str) -> PatchMeta {
    match g.get(ty) {
        TypeDef::Struct { fields, .. } => match fields.get(key) {
            Some(f) => PatchMeta {
                ty: f.ty,
                strategies: f.patch_strategy.clone(),
                merge_key: f.patch_merge_key.clone().unwrap_or_default(),
            },
            None => untyped_meta(),
        },
        TypeDef::Map { values, .. } => PatchMeta {
            ty: *values,
            strategies: Vec::new(),
            merge_key: String::new(),
        },
        _ => untyped_meta(),
    }
}

fn untyped_meta() -> PatchMeta {
    PatchMeta {
        ty: TypeId::UNTYPED,
        strategies: Vec::new(),
        merge_key: String::new(),
    }
}

/// The item type of a list type (untyped for anything else).
pub(crate) fn list_item_type(g: &TypeGraph, ty: TypeId) -> TypeId {
    match g.get(ty) {
        TypeDef::List { items, .. } => *items,
        _ => TypeId::UNTYPED,
    }
}

/// Go's `reflect.Kind` name of a list item type, for error messages.
pub(crate) fn item_kind_name(g: &TypeGraph, ty: TypeId) -> &'static str {
    match g.get(ty) {
        TypeDef::Struct { .. } => "struct",
        TypeDef::Map { .. } => "map",
        TypeDef::List { .. } => "slice",
        TypeDef::Scalar => "string",
        TypeDef::Untyped { .. } => "interface",
    }
}

/// Splits strategies into (has retainKeys, other strategy).
pub(crate) fn extract_retain_keys_patch_strategy(
    strategies: &[String],
) -> Result<(bool, String), PatchError> {
    match strategies {
        [] => Ok((false, String::new())),
        [one] if one == RETAIN_KEYS_STRATEGY => Ok((true, String::new())),
        [one] => Ok((false, one.clone())),
        [a, b] if a == RETAIN_KEYS_STRATEGY => Ok((true, b.clone())),
        [a, b] if b == RETAIN_KEYS_STRATEGY => Ok((true, a.clone())),
        _ => Err(PatchError::Other(format!(
            "unexpected patch strategy: [{}]",
            strategies.join(" ")
        ))),
    }
}

/// Go's `sort.SliceStable`, reproduced step for step so that comparators
/// that are not strict weak orders (upstream has one) give upstream's order.
pub(crate) fn go_stable_sort<T>(data: &mut [T], less: &dyn Fn(&T, &T) -> bool) {
    let n = data.len();
    let mut block = 20;
    let (mut a, mut b) = (0, block);
    while b <= n {
        insertion_sort(data, a, b, less);
        a = b;
        b += block;
    }
    insertion_sort(data, a, n, less);
    while block < n {
        a = 0;
        b = 2 * block;
        while b <= n {
            sym_merge(data, a, a + block, b, less);
            a = b;
            b += 2 * block;
        }
        let m = a + block;
        if m < n {
            sym_merge(data, a, m, n, less);
        }
        block *= 2;
    }
}

fn insertion_sort<T>(data: &mut [T], a: usize, b: usize, less: &dyn Fn(&T, &T) -> bool) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(&data[j], &data[j - 1]) {
            data.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn sym_merge<T>(data: &mut [T], a: usize, m: usize, b: usize, less: &dyn Fn(&T, &T) -> bool) {
    if m - a == 1 {
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(&data[h], &data[a]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = a;
        while k + 1 < i {
            data.swap(k, k + 1);
            k += 1;
        }
        return;
    }
    if b - m == 1 {
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(&data[m], &data[h]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = m;
        while k > i {
            data.swap(k, k - 1);
            k -= 1;
        }
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(&data[p - c], &data[c]) {
            start = c + 1;
        } else {
            r = c;
        }
    }
    let end = n - start;
    if start < m && m < end {
        rotate(data, start, m, end);
    }
    if a < start && start < mid {
        sym_merge(data, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(data, mid, end, b, less);
    }
}

fn rotate<T>(data: &mut [T], a: usize, m: usize, b: usize) {
    let mut i = m - a;
    let mut j = b - m;
    while i != j {
        if i > j {
            swap_range(data, m - i, m, j);
            i -= j;
        } else {
            swap_range(data, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(data, m - i, m, i);
}

fn swap_range<T>(data: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        data.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_sort_matches_sorting() {
        let mut v: Vec<(u32, usize)> = (0..100).map(|i| ((i * 37 % 11) as u32, i)).collect();
        let mut expected = v.clone();
        expected.sort_by_key(|x| x.0);
        go_stable_sort(&mut v, &|a, b| a.0 < b.0);
        assert_eq!(v, expected);
    }

    #[test]
    fn strategies() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            extract_retain_keys_patch_strategy(&s(&["merge", "retainKeys"])).unwrap(),
            (true, "merge".to_string())
        );
        assert_eq!(
            extract_retain_keys_patch_strategy(&s(&["retainKeys"])).unwrap(),
            (true, String::new())
        );
        assert_eq!(
            extract_retain_keys_patch_strategy(&s(&["a", "b"]))
                .unwrap_err()
                .to_string(),
            "unexpected patch strategy: [a b]"
        );
    }

    #[test]
    fn status_codes() {
        assert_eq!(PatchError::BadPatchFormatForRetainKeys.status_code(), 400);
        assert_eq!(PatchError::NoListOfLists.status_code(), 422);
        assert_eq!(PatchError::Other("x".into()).status_code(), 500);
        assert_eq!(
            PatchError::NotAnObject("array").to_string(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
    }
}
