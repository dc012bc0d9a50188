//! Applying a strategic merge patch to an object (upstream's
//! `StrategicMergeMapPatch`, server side: parallel lists merged, unmatched
//! `null`s ignored).

use serde_json::{Map, Value};

use super::{
    extract_retain_keys_patch_strategy, go_stable_sort, item_kind_name, list_item_type,
    lookup_patch_meta, PatchError, PatchMeta, DELETE_DIRECTIVE, DELETE_FROM_PRIMITIVE_LIST_PREFIX,
    DIRECTIVE_MARKER, MERGE_DIRECTIVE, REPLACE_DIRECTIVE, RETAIN_KEYS_DIRECTIVE,
    SET_ELEMENT_ORDER_PREFIX,
};
use crate::goval::{go_eq, go_kind, go_s, go_type_name, go_v, GoKind};
use crate::schema::{TypeGraph, TypeId};

/// Applies `patch` to `original` and returns the patched object.
///
/// `original` must be an object (`null` counts as `{}`); `patch` must be an
/// object (`null` is an empty patch). Field metadata comes from `graph`,
/// starting at type `root`.
pub fn apply_strategic_patch(
    original: &Value,
    patch: &Value,
    graph: &TypeGraph,
    root: TypeId,
) -> Result<Value, PatchError> {
    let patch_map = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        Value::Array(_) => return Err(PatchError::NotAnObject("array")),
        Value::String(_) => return Err(PatchError::NotAnObject("string")),
        Value::Number(_) => return Err(PatchError::NotAnObject("number")),
        Value::Bool(_) => return Err(PatchError::NotAnObject("bool")),
    };
    let original_map = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::BadJsonDoc),
    };
    let p = Patcher { g: graph };
    p.merge_map(original_map, patch_map, root)
        .map(Value::Object)
}

pub(crate) fn no_merge_key(m: &Value, key: &str) -> PatchError {
    PatchError::Other(format!(
        "map: {} does not contain declared merge key: {}",
        go_v(m),
        key
    ))
}

pub(crate) fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Other(format!(
        "expected a {}, but received a {}",
        expected,
        go_type_name(actual)
    ))
}

const MAP_TYPE: &str = "map[string]interface {}";
const SLICE_TYPE: &str = "[]interface {}";

fn bad_patch_type(t: &Value, m: &Value) -> PatchError {
    PatchError::Other(format!(
        "unknown patch type: {} in map: {}",
        go_s(t),
        go_v(m)
    ))
}

/// The key after a directive prefix (`$setElementOrder/containers` gives
/// `containers`).
pub(crate) fn extract_key(s: &str, prefix: &str) -> Result<String, PatchError> {
    match s.split_once('/') {
        Some((head, rest)) if head == prefix => Ok(rest.to_string()),
        _ => Err(match prefix {
            DELETE_FROM_PRIMITIVE_LIST_PREFIX => PatchError::BadPatchFormatForPrimitiveList,
            SET_ELEMENT_ORDER_PREFIX => PatchError::BadPatchFormatForSetElementOrderList,
            _ => PatchError::Other(format!(
                "fail to find unknown prefix {} in {}\n",
                crate::goval::go_quote(prefix),
                s
            )),
        }),
    }
}

/// The dynamic element type shared by all items of the given lists.
pub(crate) fn slice_element_type(lists: &[&[Value]]) -> Result<GoKind, PatchError> {
    let mut prev: Option<GoKind> = None;
    for list in lists {
        for v in list.iter() {
            let k = go_kind(v);
            match prev {
                None => {
                    if k == GoKind::Nil {
                        return Err(PatchError::Other(
                            "runtime error: invalid memory address or nil pointer dereference"
                                .to_string(),
                        ));
                    }
                    if k == GoKind::Slice {
                        return Err(PatchError::NoListOfLists);
                    }
                    prev = Some(k);
                }
                Some(p) if p != k => {
                    let all =
                        Value::Array(lists.iter().map(|l| Value::Array(l.to_vec())).collect());
                    return Err(PatchError::Other(format!(
                        "list element types are not identical: {}",
                        go_v(&all)
                    )));
                }
                Some(_) => {}
            }
        }
    }
    prev.ok_or_else(|| PatchError::Other("no elements in any of the given slices".to_string()))
}

/// Position of `val` in `l` (by merge key for maps), or -1.
fn index_of(l: &[Value], val: &Value, merge_key: &str, kind: GoKind) -> isize {
    let get = |item: &Value| -> Value {
        if kind == GoKind::Map {
            item.as_object()
                .and_then(|m| m.get(merge_key))
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            item.clone()
        }
    };
    let want = get(val);
    l.iter()
        .position(|v| go_eq(&get(v), &want))
        .map(|i| i as isize)
        .unwrap_or(-1)
}

pub(crate) fn validate_merge_key_in_lists(
    merge_key: &str,
    lists: &[&[Value]],
) -> Result<(), PatchError> {
    for list in lists {
        for item in list.iter() {
            let Value::Object(m) = item else {
                return Err(bad_arg_type(MAP_TYPE, item));
            };
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(item, merge_key));
            }
        }
    }
    Ok(())
}

/// Splits out the items carrying `$patch: delete`.
fn extract_to_delete_items(l: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in l {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type(MAP_TYPE, &v));
        };
        if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// Sorts `to_sort` by the positions of its items in `order`.
pub(crate) fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>, PatchError> {
    let mut to_sort = to_sort;
    let mut to_delete = Vec::new();
    if kind == GoKind::Map {
        validate_merge_key_in_lists(merge_key, &[&to_sort, order])?;
        (to_sort, to_delete) = extract_to_delete_items(to_sort)?;
    }
    go_stable_sort(&mut to_sort, &|a, b| {
        let ia = index_of(order, a, merge_key, kind);
        if ia >= 0 {
            let ib = index_of(order, b, merge_key, kind);
            if ib >= 0 {
                return ia < ib;
            }
        }
        true
    });
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// Interleaves server-only items (`left`) into the patch items (`right`),
/// keeping each list's relative order and the live order where both are
/// known.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Vec<Value> {
    let size = left.len() + right.len();
    let mut out = Vec::with_capacity(size);
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    for _ in 0..size {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, _) => false,
            (Some(l), Some(r)) => {
                let li = index_of(server_order, l, merge_key, kind);
                let ri = index_of(server_order, r, merge_key, kind);
                li >= 0 && ri >= 0 && li < ri
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    out
}

fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch,
        server_order,
        merge_key,
        kind,
    ))
}

fn partition_primitives(original: &[Value], by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut patch = Vec::new();
    let mut server_only = Vec::new();
    for v in original {
        if by.iter().any(|b| go_eq(b, v)) {
            patch.push(v.clone());
        } else {
            server_only.push(v.clone());
        }
    }
    (patch, server_only)
}

/// Index of the map in `m` whose `key` equals `value`.
fn find_map_in_slice(m: &[Value], key: &str, value: &Value) -> Result<Option<usize>, PatchError> {
    for (i, v) in m.iter().enumerate() {
        let Value::Object(obj) = v else {
            return Err(PatchError::Other(format!(
                "value for key {} is not a map.",
                i
            )));
        };
        if let Some(x) = obj.get(key) {
            if go_eq(x, value) {
                return Ok(Some(i));
            }
        }
    }
    Ok(None)
}

fn partition_maps(
    original: &[Value],
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut patch = Vec::new();
    let mut server_only = Vec::new();
    for v in original {
        let Value::Object(m) = v else {
            return Err(bad_arg_type(MAP_TYPE, v));
        };
        let Some(mv) = m.get(merge_key) else {
            return Err(no_merge_key(v, merge_key));
        };
        if find_map_in_slice(by, merge_key, mv)?.is_some() {
            patch.push(v.clone());
        } else {
            server_only.push(v.clone());
        }
    }
    Ok((patch, server_only))
}

/// Upstream's in-place de-duplication (it moves the last item into the
/// place of a duplicate, which the later sort makes irrelevant).
pub(crate) fn deduplicate_scalars(s: Vec<Value>) -> Vec<Value> {
    let mut s = s;
    let mut length = s.len() as isize - 1;
    let mut i: isize = 0;
    while i < length {
        let mut j = i + 1;
        while j <= length {
            if go_eq(&s[i as usize], &s[j as usize]) {
                s[j as usize] = s[length as usize].clone();
                s.truncate(length as usize);
                length -= 1;
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    s
}

fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(go_eq(left, right));
    }
    let Value::Object(l) = left else {
        return Err(bad_arg_type(MAP_TYPE, left));
    };
    let Value::Object(r) = right else {
        return Err(bad_arg_type(MAP_TYPE, right));
    };
    let Some(lv) = l.get(merge_key) else {
        return Err(no_merge_key(left, merge_key));
    };
    let Some(rv) = r.get(merge_key) else {
        return Err(no_merge_key(right, merge_key));
    };
    Ok(go_eq(lv, rv))
}

/// Checks that the patch list is ordered like (and contained in) the
/// `$setElementOrder` list.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    set_order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if set_order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete = if merge_key.is_empty() {
        patch_list.to_vec()
    } else {
        extract_to_delete_items(patch_list.to_vec())?.0
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < set_order.len() {
        if non_delete[pi]
            .as_object()
            .map(|m| m.contains_key(DIRECTIVE_MARKER))
            .unwrap_or(false)
        {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(&non_delete[pi], &set_order[si], merge_key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= set_order.len() {
        return Err(PatchError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {} list:\n{}\n",
            go_v(&Value::Array(patch_list.to_vec())),
            SET_ELEMENT_ORDER_PREFIX,
            go_v(&Value::Array(set_order.to_vec()))
        )));
    }
    Ok(())
}

/// Handles `$retainKeys`: checks it covers the patch and drops the other
/// keys from the original.
fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(list) = retain else {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    };
    let retained = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(k) {
            return Err(PatchError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

struct Patcher<'g> {
    g: &'g TypeGraph,
}

impl Patcher<'_> {
    fn merge_map(
        &self,
        original: Map<String, Value>,
        patch: Map<String, Value>,
        ty: TypeId,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
            let directive = directive.clone();
            return handle_directive_in_map(&directive, patch);
        }
        let mut original = original;
        let mut patch = patch;
        apply_retain_keys_directive(&mut original, &mut patch)?;
        self.merge_set_element_order(&mut original, &mut patch, ty)?;

        // Parallel deletion lists go after the ordinary keys so that the
        // outcome does not depend on key order.
        let mut deletions = Vec::new();
        for (k, pv) in patch {
            if k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
                let key = extract_key(&k, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?;
                deletions.push((key, pv));
                continue;
            }
            self.merge_entry(&mut original, k, pv, ty, false)?;
        }
        for (k, pv) in deletions {
            self.merge_entry(&mut original, k, pv, ty, true)?;
        }
        Ok(original)
    }

    fn merge_entry(
        &self,
        original: &mut Map<String, Value>,
        key: String,
        pv: Value,
        ty: TypeId,
        is_delete_list: bool,
    ) -> Result<(), PatchError> {
        if pv.is_null() {
            original.remove(&key);
            return Ok(());
        }
        let Some(slot) = original.get_mut(&key) else {
            // A value the original lacks is taken as it is, cleaned of nulls
            // and directives; a deletion list for it does nothing.
            if !is_delete_list {
                if let Some(v) = clean_new_value(pv) {
                    original.insert(key, v);
                }
            }
            return Ok(());
        };
        if go_kind(slot) != go_kind(&pv) {
            if !is_delete_list {
                match clean_new_value(pv) {
                    Some(v) => *slot = v,
                    None => {
                        original.remove(&key);
                    }
                }
            }
            return Ok(());
        }
        let meta = lookup_patch_meta(self.g, ty, &key);
        let ov = std::mem::take(slot);
        let nv = match (ov, pv) {
            (Value::Object(om), Value::Object(pm)) => {
                let (_, strategy) = extract_retain_keys_patch_strategy(&meta.strategies)?;
                if strategy != REPLACE_DIRECTIVE {
                    Some(Value::Object(self.merge_map(om, pm, meta.ty)?))
                } else {
                    clean_new_value(Value::Object(pm))
                }
            }
            (Value::Array(oa), Value::Array(pa)) => {
                let (_, strategy) = extract_retain_keys_patch_strategy(&meta.strategies)?;
                Some(self.merge_slice_handler(oa, pa, &meta, &strategy, is_delete_list)?)
            }
            (_, pv) => clean_new_value(pv),
        };
        match nv {
            Some(v) => {
                if let Some(slot) = original.get_mut(&key) {
                    *slot = v;
                }
            }
            None => {
                original.remove(&key);
            }
        }
        Ok(())
    }

    fn merge_slice_handler(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        meta: &PatchMeta,
        strategy: &str,
        is_delete_list: bool,
    ) -> Result<Value, PatchError> {
        let item_ty = list_item_type(self.g, meta.ty);
        if strategy == MERGE_DIRECTIVE {
            Ok(Value::Array(self.merge_slice(
                original,
                patch,
                item_ty,
                &meta.merge_key,
                is_delete_list,
            )?))
        } else {
            Ok(Value::Array(clean_new_items(patch)))
        }
    }

    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        item_ty: TypeId,
        merge_key: &str,
        is_delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = slice_element_type(&[&original, &patch])?;
        if kind != GoKind::Map {
            if is_delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.iter().any(|d| go_eq(d, v)))
                    .collect());
            }
            let mut both = original.clone();
            both.extend(patch.iter().cloned());
            let merged = deduplicate_scalars(both);
            let (patch_items, server_only) = partition_primitives(&merged, &patch);
            return normalize_element_order(patch_items, server_only, &patch, &original, "", kind);
        }
        if merge_key.is_empty() {
            return Err(PatchError::Other(format!(
                "cannot merge lists without merge key for type {}",
                item_kind_name(self.g, item_ty)
            )));
        }
        let (original, patch) = merge_slice_with_special_elements(original, patch, merge_key)?;
        let merged = self.merge_slice_without_special_elements(
            original.clone(),
            &patch,
            merge_key,
            item_ty,
        )?;
        let (patch_items, server_only) = partition_maps(&merged, &patch, merge_key)?;
        normalize_element_order(patch_items, server_only, &patch, &original, merge_key, kind)
    }

    fn merge_slice_without_special_elements(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        merge_key: &str,
        item_ty: TypeId,
    ) -> Result<Vec<Value>, PatchError> {
        let mut original = original;
        for v in patch {
            let Value::Object(pm) = v else {
                return Err(bad_arg_type(MAP_TYPE, v));
            };
            let Some(mv) = pm.get(merge_key) else {
                return Err(no_merge_key(v, merge_key));
            };
            match find_map_in_slice(&original, merge_key, mv)? {
                Some(i) => {
                    let om = match std::mem::take(&mut original[i]) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    original[i] = Value::Object(self.merge_map(om, pm.clone(), item_ty)?);
                }
                None => {
                    if let Some(v) = clean_new_value(v.clone()) {
                        original.push(v);
                    }
                }
            }
        }
        Ok(original)
    }

    /// Processes `$setElementOrder/<key>` directives: merges the list they
    /// order and sorts it (directive order, then patch order, then live
    /// order).
    fn merge_set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        ty: TypeId,
    ) -> Result<(), PatchError> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
            .cloned()
            .collect();
        for key in keys {
            let directive = patch.remove(&key).unwrap_or(Value::Null);
            let Value::Array(set_order) = directive else {
                return Err(bad_arg_type(SLICE_TYPE, &directive));
            };
            let original_key = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?;
            let original_list = match original.get(&original_key) {
                None => None,
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
            };
            let patch_list = match patch.get(&original_key) {
                None => None,
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
            };
            let meta = lookup_patch_meta(self.g, ty, &original_key);
            let (_, strategy) = extract_retain_keys_patch_strategy(&meta.strategies)?;
            validate_patch_with_set_order_list(
                patch_list.as_deref().unwrap_or(&[]),
                &set_order,
                &meta.merge_key,
            )?;
            let merged = match (&original_list, &patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => clean_new_items(p.clone()),
                (Some(o), Some(p)) => {
                    match self.merge_slice_handler(o.clone(), p.clone(), &meta, &strategy, false)? {
                        Value::Array(a) => a,
                        _ => Vec::new(),
                    }
                }
                (None, None) => continue,
            };
            let (patch_items, server_only) = if meta.merge_key.is_empty() {
                partition_primitives(&merged, &set_order)
            } else {
                partition_maps(&merged, &set_order, &meta.merge_key)?
            };
            let original_items = original_list.unwrap_or_default();
            let kind =
                slice_element_type(&[&original_items, patch_list.as_deref().unwrap_or(&[])])?;
            let both = normalize_element_order(
                patch_items,
                server_only,
                &set_order,
                &original_items,
                &meta.merge_key,
                kind,
            )?;
            original.insert(original_key.clone(), Value::Array(both));
            patch.remove(&original_key);
        }
        Ok(())
    }
}

/// `$patch: replace` keeps only the patch; `$patch: delete` empties the map.
fn handle_directive_in_map(
    directive: &Value,
    patch: Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match directive.as_str() {
        Some(REPLACE_DIRECTIVE) => {
            let mut patch = patch;
            patch.remove(DIRECTIVE_MARKER);
            Ok(match clean_new_value(Value::Object(patch)) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            })
        }
        Some(DELETE_DIRECTIVE) => Ok(Map::new()),
        _ => Err(bad_patch_type(directive, &Value::Object(patch))),
    }
}

/// Whether a key is a patch directive rather than a field.
fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE_MARKER
        || k == RETAIN_KEYS_DIRECTIVE
        || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
}

/// A patch value taken as a whole (the original has nothing to merge it
/// with): `null` object values are discarded, objects carrying `$patch`
/// vanish (`None` for the value itself) and other directive keys are
/// dropped, at every depth.
fn clean_new_value(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            let mut out = Map::new();
            for (k, cv) in m {
                if cv.is_null() || is_directive_key(&k) {
                    continue;
                }
                if let Some(c) = clean_new_value(cv) {
                    out.insert(k, c);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(clean_new_items(items))),
        other => Some(other),
    }
}

fn clean_new_items(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(clean_new_value).collect()
}

/// Applies `$patch: delete` and `$patch: replace` list items; returns the
/// new original and the patch items without directives.
fn merge_slice_with_special_elements(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut original = original;
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let directive = v.as_object().and_then(|m| m.get(DIRECTIVE_MARKER)).cloned();
        let Some(directive) = directive else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let Some(mv) = v.as_object().and_then(|m| m.get(merge_key)) else {
                    return Err(no_merge_key(&v, merge_key));
                };
                while let Some(i) = find_map_in_slice(&original, merge_key, mv)? {
                    original.remove(i);
                }
            }
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => {
                return Err(PatchError::Other(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ))
            }
            _ => return Err(bad_patch_type(&directive, &v)),
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, ListType, StructDef};
    use serde_json::json;

    /// A Pod-like schema with upstream's patch tags.
    fn graph() -> (TypeGraph, TypeId) {
        let mut g = TypeGraph::new();
        let labels = g.map(TypeId::SCALAR);
        let finalizers = g.list(TypeId::SCALAR, ListType::Atomic);
        let meta = g.add_struct(
            "ObjectMeta",
            StructDef::new()
                .scalar("name")
                .field("labels", labels)
                .field("annotations", labels)
                .field("finalizers", Field::new(finalizers).strategy("merge")),
        );
        let env = g.add_struct("EnvVar", StructDef::new().scalar("name").scalar("value"));
        let envs = g.list(env, ListType::map(["name"]));
        let port = g.add_struct(
            "ContainerPort",
            StructDef::new()
                .scalar("containerPort")
                .scalar("protocol")
                .scalar("name"),
        );
        let ports = g.list(port, ListType::map(["containerPort", "protocol"]));
        let args = g.list(TypeId::SCALAR, ListType::Atomic);
        let container = g.add_struct(
            "Container",
            StructDef::new()
                .scalar("name")
                .scalar("image")
                .field("args", args)
                .field("env", Field::new(envs).strategy("merge").merge_key("name"))
                .field(
                    "ports",
                    Field::new(ports)
                        .strategy("merge")
                        .merge_key("containerPort"),
                ),
        );
        let containers = g.list(container, ListType::map(["name"]));
        let ru = g.add_struct(
            "RollingUpdate",
            StructDef::new().scalar("maxSurge").scalar("maxUnavailable"),
        );
        let strategy = g.add_struct(
            "DeploymentStrategy",
            StructDef::new().scalar("type").field("rollingUpdate", ru),
        );
        let hostpath = g.add_struct("HostPath", StructDef::new().scalar("path"));
        let emptydir = g.add_struct("EmptyDir", StructDef::new().scalar("medium"));
        let volume = g.add_struct(
            "Volume",
            StructDef::new()
                .scalar("name")
                .field("hostPath", hostpath)
                .field("emptyDir", emptydir),
        );
        let volumes = g.list(volume, ListType::map(["name"]));
        let tolerations = g.list(TypeId::UNTYPED, ListType::Atomic);
        let spec = g.add_struct(
            "PodSpec",
            StructDef::new()
                .field(
                    "containers",
                    Field::new(containers).strategy("merge").merge_key("name"),
                )
                .field(
                    "volumes",
                    Field::new(volumes)
                        .strategy("merge,retainKeys")
                        .merge_key("name"),
                )
                .field("strategy", Field::new(strategy).strategy("retainKeys"))
                .field("tolerations", tolerations)
                .scalar("replicas")
                .scalar("nodeName"),
        );
        let root = g.add_struct(
            "Pod",
            StructDef::new()
                .scalar("apiVersion")
                .scalar("kind")
                .field("metadata", meta)
                .field("spec", spec),
        );
        (g, root)
    }

    fn patch(original: Value, p: Value) -> Result<Value, PatchError> {
        let (g, root) = graph();
        apply_strategic_patch(&original, &p, &g, root)
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = patch(
            json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": null, "c": "3", "z": null}}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "p", "labels": {"b": "2", "c": "3"}}})
        );
    }

    #[test]
    fn containers_merge_by_name_new_items_first() {
        let out = patch(
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:1"},
                {"name": "b", "image": "b:1"}
            ]}}),
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:2"},
                {"name": "c", "image": "c:1"}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:1"},
                {"name": "b", "image": "b:2"},
                {"name": "c", "image": "c:1"}
            ]}})
        );
        // An item only in the patch lands before server-only items that the
        // live order cannot place (upstream's ordering).
        let out = patch(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
        )
        .unwrap();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["c", "a", "b"]);
    }

    #[test]
    fn nested_merge_lists() {
        let out = patch(
            json!({"spec": {"containers": [{"name": "a", "env": [
                {"name": "X", "value": "1"}, {"name": "Y", "value": "2"}
            ]}]}}),
            json!({"spec": {"containers": [{"name": "a", "env": [
                {"name": "Y", "value": "3"}, {"name": "X", "$patch": "delete"}
            ]}]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "3"}]}]}})
        );
    }

    #[test]
    fn delete_directive_in_list() {
        let out = patch(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"containers": [{"name": "b"}]}}));
    }

    #[test]
    fn replace_directive_in_list_and_map() {
        let out = patch(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"containers": [{"name": "c"}]}}));

        let out = patch(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"c": "3"}}}));

        let out = patch(
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"nodeName": "n"}}),
            json!({"spec": {"$patch": "delete"}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"a": "1"}}, "spec": {}}));
    }

    #[test]
    fn bad_directives() {
        let err = patch(
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "merging lists cannot yet be specified in the patch"
        );
        let err = patch(
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"$patch": "merge"}}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown patch type: merge in map: map[$patch:merge]"
        );
        let err = patch(
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"image": "x", "$patch": "delete"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "map: map[$patch:delete image:x] does not contain declared merge key: name"
        );
        assert_eq!(err.status_code(), 500);
    }

    #[test]
    fn missing_merge_key() {
        let err = patch(
            json!({"spec": {"containers": [{"name": "a", "image": "a"}]}}),
            json!({"spec": {"containers": [{"image": "nginx"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "map: map[image:nginx] does not contain declared merge key: name"
        );
    }

    #[test]
    fn primitive_merge_list() {
        let out = patch(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["c", "a", "b"]}}));
        let out = patch(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["a", "c"]}}));
        let err = patch(
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
        )
        .unwrap_err();
        assert_eq!(err, PatchError::BadPatchFormatForPrimitiveList);
        assert_eq!(err.to_string(), "invalid patch format of primitive list");
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn set_element_order() {
        let out = patch(
            json!({"spec": {"containers": [
                {"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "c", "image": "1"}
            ]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                "containers": [{"name": "a", "image": "2"}]
            }}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "c", "image": "1"}, {"name": "a", "image": "2"}, {"name": "b", "image": "1"}
            ]}})
        );
        let out = patch(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c", "a", "d"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "finalizers": ["d"]
            }}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["c", "a", "d"]}}));
        let err = patch(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "b", "image": "x"}]
            }}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The order in patch list:\n[map[image:x name:b]]\n doesn't match $setElementOrder list:\n[map[name:a]]\n"
        );
        let err = patch(
            json!({"spec": {"containers": []}}),
            json!({"spec": {"$setElementOrder": []}}),
        )
        .unwrap_err();
        assert_eq!(err, PatchError::BadPatchFormatForSetElementOrderList);
    }

    #[test]
    fn retain_keys() {
        let out = patch(
            json!({"spec": {"strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                "rollingUpdate": null}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let out = patch(
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}),
            json!({"spec": {"volumes": [{"$retainKeys": ["emptyDir", "name"], "name": "v",
                "emptyDir": {}}]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}})
        );
        let err = patch(
            json!({"spec": {"strategy": {"type": "A"}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        )
        .unwrap_err();
        assert_eq!(err, PatchError::BadPatchFormatForRetainKeys);
        let err = patch(
            json!({"spec": {"strategy": {"type": "A"}}}),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid patch format of retainKeys");
    }

    #[test]
    fn non_merge_lists_replace() {
        let out = patch(
            json!({"spec": {"containers": [{"name": "a", "args": ["1", "2"]}],
                            "tolerations": [{"key": "x"}]}}),
            json!({"spec": {"containers": [{"name": "a", "args": ["3"]}],
                            "tolerations": [{"key": "y"}]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "args": ["3"]}],
                            "tolerations": [{"key": "y"}]}})
        );
    }

    #[test]
    fn multi_key_ports_merge_by_declared_key() {
        let out = patch(
            json!({"spec": {"containers": [{"name": "a", "ports": [
                {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}
            ]}]}}),
            json!({"spec": {"containers": [{"name": "a", "ports": [
                {"containerPort": 80, "name": "http"}
            ]}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"},
                   {"containerPort": 53, "protocol": "UDP"}])
        );
    }

    #[test]
    fn type_errors() {
        let err = patch(
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [1]}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "list element types are not identical: [[a] [1]]"
        );
        let err = patch(
            json!({"metadata": {"finalizers": [["a"]]}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
        )
        .unwrap_err();
        assert_eq!(err, PatchError::NoListOfLists);
        let err = patch(json!({}), json!([1])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
    }

    #[test]
    fn kind_change_replaces_and_new_values_are_clean() {
        let out = patch(
            json!({"spec": {"nodeName": "a"}}),
            json!({"spec": {"nodeName": {"x": 1}, "replicas": 2,
                   "containers": [{"name": "a", "image": null}]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"nodeName": {"x": 1}, "replicas": 2, "containers": [{"name": "a"}]}})
        );
        assert_eq!(
            patch(json!({"a": 1}), json!({"$patch": "delete"})).unwrap(),
            json!({})
        );
        assert_eq!(
            patch(json!({"a": 1}), Value::Null).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn new_values_drop_directives_and_nulls() {
        let out = patch(
            json!({"metadata": {"name": "p"}}),
            json!({"metadata": {"labels": {"a": "1", "b": null},
                                "annotations": {"$patch": "delete"},
                                "$deleteFromPrimitiveList/finalizers": ["x"]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "p", "labels": {"a": "1"}}})
        );
        let out = patch(
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "b", "env": [
                {"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}
            ], "$setElementOrder/env": [{"name": "X"}]}]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "b", "env": [{"name": "X", "value": "1"}]},
                {"name": "a"}
            ]}})
        );
    }

    #[test]
    fn unknown_fields_merge_as_json() {
        let out = patch(
            json!({"spec": {"custom": {"a": 1, "b": [1, 2]}}}),
            json!({"spec": {"custom": {"a": null, "b": [3], "c": {"d": 1}}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"custom": {"b": [3], "c": {"d": 1}}}}));
    }
}
