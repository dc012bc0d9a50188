//! Computing a strategic merge patch from two versions of an object
//! (upstream's `CreateTwoWayMergePatch`, with `$setElementOrder` lists and
//! `$retainKeys` directives).

use serde_json::{Map, Value};

use super::patch::{
    bad_arg_type, deduplicate_scalars, no_merge_key, normalize_slice_order, slice_element_type,
};
use super::{
    extract_retain_keys_patch_strategy, list_item_type, lookup_patch_meta, PatchError,
    DELETE_DIRECTIVE, DELETE_FROM_PRIMITIVE_LIST_PREFIX, DIRECTIVE_MARKER, MERGE_DIRECTIVE,
    REPLACE_DIRECTIVE, RETAIN_KEYS_DIRECTIVE, SET_ELEMENT_ORDER_PREFIX,
};
use crate::goval::{go_eq, go_kind, go_v, GoKind};
use crate::schema::{TypeGraph, TypeId};

#[derive(Clone, Copy, Default)]
struct DiffOptions {
    set_element_order: bool,
    ignore_changes_and_additions: bool,
    ignore_deletions: bool,
    build_retain_keys_directive: bool,
}

/// Returns the strategic merge patch that turns `original` into `modified`
/// (both objects; `null` counts as `{}`).
pub fn create_two_way_patch(
    original: &Value,
    modified: &Value,
    graph: &TypeGraph,
    root: TypeId,
) -> Result<Value, PatchError> {
    let as_map = |v: &Value| match v {
        Value::Object(m) => Ok(m.clone()),
        Value::Null => Ok(Map::new()),
        _ => Err(PatchError::BadJsonDoc),
    };
    let o = as_map(original)?;
    let m = as_map(modified)?;
    let opts = DiffOptions {
        set_element_order: true,
        ..Default::default()
    };
    diff_maps(graph, &o, &m, root, opts).map(Value::Object)
}

fn sort_scalars(s: Vec<Value>) -> Vec<Value> {
    let mut s = s;
    s.sort_by_key(go_v);
    s
}

fn diff_maps(
    g: &TypeGraph,
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    ty: TypeId,
    opts: DiffOptions,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = Map::new();
    let mut retain_keys = Vec::new();
    for (key, mv) in modified {
        if opts.build_retain_keys_directive && !mv.is_null() {
            retain_keys.push(Value::String(key.clone()));
        }
        let Some(ov) = original.get(key) else {
            if !opts.ignore_changes_and_additions {
                patch.insert(key.clone(), mv.clone());
            }
            continue;
        };
        if key == DIRECTIVE_MARKER {
            let (Some(os), Some(ms)) = (ov.as_str(), mv.as_str()) else {
                return Err(PatchError::Other(format!(
                    "invalid value for special key: {}",
                    DIRECTIVE_MARKER
                )));
            };
            if os != ms {
                patch.insert(key.clone(), mv.clone());
            }
            continue;
        }
        if go_kind(ov) != go_kind(mv) {
            if !opts.ignore_changes_and_additions {
                patch.insert(key.clone(), mv.clone());
            }
            continue;
        }
        match (ov, mv) {
            (Value::Object(oo), Value::Object(mo)) => {
                let meta = lookup_patch_meta(g, ty, key);
                let (retain, strategy) = extract_retain_keys_patch_strategy(&meta.strategies)?;
                let sub_opts = DiffOptions {
                    build_retain_keys_directive: retain,
                    ..opts
                };
                if strategy == REPLACE_DIRECTIVE {
                    if !opts.ignore_changes_and_additions {
                        patch.insert(key.clone(), mv.clone());
                    }
                } else {
                    let pv = diff_maps(g, oo, mo, meta.ty, sub_opts)?;
                    if !pv.is_empty() {
                        patch.insert(key.clone(), Value::Object(pv));
                    }
                }
            }
            (Value::Array(oa), Value::Array(ma)) => {
                let meta = lookup_patch_meta(g, ty, key);
                let (retain, strategy) = extract_retain_keys_patch_strategy(&meta.strategies)?;
                if strategy == MERGE_DIRECTIVE {
                    let sub_opts = DiffOptions {
                        build_retain_keys_directive: retain,
                        ..opts
                    };
                    let (add, del, order) = diff_lists(
                        g,
                        oa,
                        ma,
                        list_item_type(g, meta.ty),
                        &meta.merge_key,
                        sub_opts,
                    )?;
                    if !add.is_empty() {
                        patch.insert(key.clone(), Value::Array(add));
                    }
                    if !del.is_empty() {
                        patch.insert(
                            format!("{}/{}", DELETE_FROM_PRIMITIVE_LIST_PREFIX, key),
                            Value::Array(del),
                        );
                    }
                    if !order.is_empty() {
                        patch.insert(
                            format!("{}/{}", SET_ELEMENT_ORDER_PREFIX, key),
                            Value::Array(order),
                        );
                    }
                } else if !opts.ignore_changes_and_additions && !go_eq(ov, mv) {
                    patch.insert(key.clone(), mv.clone());
                }
            }
            _ => {
                if !opts.ignore_changes_and_additions && !go_eq(ov, mv) {
                    patch.insert(key.clone(), mv.clone());
                }
            }
        }
    }
    if !opts.ignore_deletions {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    let additional = original
        .iter()
        .any(|(k, v)| !v.is_null() && !modified.contains_key(k));
    if !retain_keys.is_empty() && (!patch.is_empty() || additional) {
        patch.insert(
            RETAIN_KEYS_DIRECTIVE.to_string(),
            Value::Array(sort_scalars(retain_keys)),
        );
    }
    Ok(patch)
}

type ListDiff = (Vec<Value>, Vec<Value>, Vec<Value>);

fn diff_lists(
    g: &TypeGraph,
    original: &[Value],
    modified: &[Value],
    item_ty: TypeId,
    merge_key: &str,
    opts: DiffOptions,
) -> Result<ListDiff, PatchError> {
    if original.is_empty() {
        if modified.is_empty() || opts.ignore_changes_and_additions {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        return Ok((modified.to_vec(), Vec::new(), Vec::new()));
    }
    let kind = slice_element_type(&[original, modified])?;
    if kind == GoKind::Map {
        let (patch_list, deletions) =
            diff_lists_of_maps(g, original, modified, item_ty, merge_key, opts)?;
        let mut patch_list = normalize_slice_order(patch_list, modified, merge_key, kind)?;
        let order_same = is_order_same(original, modified, merge_key)?;
        patch_list.extend(deletions);
        let mut order = Vec::new();
        if opts.set_element_order
            && ((!opts.ignore_changes_and_additions && (!patch_list.is_empty() || !order_same))
                || (!opts.ignore_deletions && !patch_list.is_empty()))
        {
            for v in modified {
                let mut m = Map::new();
                m.insert(
                    merge_key.to_string(),
                    v.as_object()
                        .and_then(|o| o.get(merge_key))
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                order.push(Value::Object(m));
            }
        }
        return Ok((patch_list, Vec::new(), order));
    }
    let (patch_list, deletions) = diff_lists_of_scalars(original, modified, opts);
    let patch_list = normalize_slice_order(patch_list, modified, merge_key, kind)?;
    let mut order = Vec::new();
    if opts.set_element_order
        && ((!opts.ignore_deletions && !deletions.is_empty())
            || (!opts.ignore_changes_and_additions
                && !go_eq(
                    &Value::Array(original.to_vec()),
                    &Value::Array(modified.to_vec()),
                )))
    {
        order = modified.to_vec();
    }
    Ok((patch_list, deletions, order))
}

fn is_order_same(
    original: &[Value],
    modified: &[Value],
    merge_key: &str,
) -> Result<bool, PatchError> {
    if original.len() != modified.len() {
        return Ok(false);
    }
    for (o, m) in original.iter().zip(modified) {
        let (Some(om), Some(mm)) = (o.as_object(), m.as_object()) else {
            return Err(bad_arg_type(
                "map[string]interface {}",
                if o.is_object() { m } else { o },
            ));
        };
        let Some(ov) = om.get(merge_key) else {
            return Err(no_merge_key(o, merge_key));
        };
        let Some(mv) = mm.get(merge_key) else {
            return Err(no_merge_key(m, merge_key));
        };
        if !go_eq(ov, mv) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn diff_lists_of_scalars(
    original: &[Value],
    modified: &[Value],
    opts: DiffOptions,
) -> (Vec<Value>, Vec<Value>) {
    let o = sort_scalars(original.to_vec());
    let m = sort_scalars(modified.to_vec());
    let (mut oi, mut mi) = (0, 0);
    let mut add = Vec::new();
    let mut del = Vec::new();
    while oi < o.len() || mi < m.len() {
        let os = o.get(oi).map(go_v);
        let ms = m.get(mi).map(go_v);
        match (os, ms) {
            (Some(a), Some(b)) if a == b => {
                oi += 1;
                mi += 1;
            }
            (None, Some(_)) => {
                if !opts.ignore_changes_and_additions {
                    add.push(m[mi].clone());
                }
                mi += 1;
            }
            (Some(a), Some(b)) if a > b => {
                if !opts.ignore_changes_and_additions {
                    add.push(m[mi].clone());
                }
                mi += 1;
            }
            _ => {
                if !opts.ignore_deletions {
                    del.push(o[oi].clone());
                }
                oi += 1;
            }
        }
    }
    (add, deduplicate_scalars(del))
}

fn map_and_key(v: &Value, merge_key: &str) -> Result<(Map<String, Value>, Value), PatchError> {
    let Value::Object(m) = v else {
        return Err(bad_arg_type("map[string]interface {}", v));
    };
    let Some(k) = m.get(merge_key) else {
        return Err(no_merge_key(v, merge_key));
    };
    Ok((m.clone(), k.clone()))
}

fn sort_maps_by_key(s: &[Value], merge_key: &str) -> Vec<Value> {
    let mut s = s.to_vec();
    s.sort_by_key(|v| {
        go_v(
            v.as_object()
                .and_then(|m| m.get(merge_key))
                .unwrap_or(&Value::Null),
        )
    });
    s
}

fn diff_lists_of_maps(
    g: &TypeGraph,
    original: &[Value],
    modified: &[Value],
    item_ty: TypeId,
    merge_key: &str,
    opts: DiffOptions,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let o = sort_maps_by_key(original, merge_key);
    let m = sort_maps_by_key(modified, merge_key);
    let (mut oi, mut mi) = (0, 0);
    let mut patch = Vec::new();
    let mut deletions = Vec::new();
    while oi < o.len() || mi < m.len() {
        let oe = o.get(oi).map(|v| map_and_key(v, merge_key)).transpose()?;
        let me = m.get(mi).map(|v| map_and_key(v, merge_key)).transpose()?;
        let os = oe.as_ref().map(|(_, k)| go_v(k));
        let ms = me.as_ref().map(|(_, k)| go_v(k));
        match (oe, me) {
            (Some((om, _)), Some((mm, mk))) if os == ms => {
                let mut pv = diff_maps(g, &om, &mm, item_ty, opts)?;
                if !pv.is_empty() {
                    pv.insert(merge_key.to_string(), mk);
                    patch.push(Value::Object(pv));
                }
                oi += 1;
                mi += 1;
            }
            (None, Some((mm, _))) => {
                if !opts.ignore_changes_and_additions {
                    patch.push(Value::Object(mm));
                }
                mi += 1;
            }
            (Some(_), Some((mm, _))) if os > ms => {
                if !opts.ignore_changes_and_additions {
                    patch.push(Value::Object(mm));
                }
                mi += 1;
            }
            (Some((_, ok)), _) => {
                if !opts.ignore_deletions {
                    let mut d = Map::new();
                    d.insert(merge_key.to_string(), ok);
                    d.insert(
                        DIRECTIVE_MARKER.to_string(),
                        Value::String(DELETE_DIRECTIVE.to_string()),
                    );
                    deletions.push(Value::Object(d));
                }
                oi += 1;
            }
            (None, None) => break,
        }
    }
    Ok((patch, deletions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, ListType, StructDef};
    use crate::strategic::apply_strategic_patch;
    use serde_json::json;

    fn graph() -> (TypeGraph, TypeId) {
        let mut g = TypeGraph::new();
        let labels = g.map(TypeId::SCALAR);
        let finalizers = g.list(TypeId::SCALAR, ListType::Set);
        let meta = g.add_struct(
            "ObjectMeta",
            StructDef::new()
                .scalar("name")
                .field("labels", labels)
                .field("finalizers", Field::new(finalizers).strategy("merge")),
        );
        let container = g.add_struct("Container", StructDef::new().scalar("name").scalar("image"));
        let containers = g.list(container, ListType::map(["name"]));
        let ru = g.add_struct(
            "RollingUpdate",
            StructDef::new().scalar("maxSurge").scalar("maxUnavailable"),
        );
        let strategy = g.add_struct(
            "DeploymentStrategy",
            StructDef::new().scalar("type").field("rollingUpdate", ru),
        );
        let spec = g.add_struct(
            "Spec",
            StructDef::new()
                .field(
                    "containers",
                    Field::new(containers).strategy("merge").merge_key("name"),
                )
                .field("strategy", Field::new(strategy).strategy("retainKeys"))
                .scalar("replicas"),
        );
        let root = g.add_struct(
            "Root",
            StructDef::new().field("metadata", meta).field("spec", spec),
        );
        (g, root)
    }

    fn round_trip(original: Value, modified: Value) -> Value {
        let (g, root) = graph();
        let p = create_two_way_patch(&original, &modified, &g, root).unwrap();
        let applied = apply_strategic_patch(&original, &p, &g, root).unwrap();
        assert_eq!(applied, modified, "patch {} did not reproduce", p);
        p
    }

    #[test]
    fn scalar_and_map_changes() {
        let p = round_trip(
            json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"replicas": 1}}),
            json!({"metadata": {"name": "a", "labels": {"x": "1", "z": "3"}}, "spec": {"replicas": 2}}),
        );
        assert_eq!(
            p,
            json!({"metadata": {"labels": {"y": null, "z": "3"}}, "spec": {"replicas": 2}})
        );
    }

    #[test]
    fn merge_list_of_maps() {
        let p = round_trip(
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "1"}]}}),
        );
        assert_eq!(
            p,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
                "containers": [
                    {"name": "b", "image": "2"},
                    {"name": "c", "image": "1"},
                    {"name": "a", "$patch": "delete"}
                ]
            }})
        );
    }

    #[test]
    fn primitive_merge_list() {
        let p = round_trip(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
        );
        assert_eq!(
            p,
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c", "a"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "finalizers": ["c"]
            }})
        );
    }

    #[test]
    fn retain_keys_directive() {
        let p = round_trip(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        );
        assert_eq!(
            p,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}})
        );
    }

    #[test]
    fn order_only_changes() {
        let p = round_trip(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                   "metadata": {"finalizers": ["x", "y"]}}),
            json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}]},
                   "metadata": {"finalizers": ["y", "x"]}}),
        );
        assert_eq!(
            p,
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]},
                   "metadata": {"$setElementOrder/finalizers": ["y", "x"]}})
        );
    }

    #[test]
    fn no_change_is_empty() {
        let o = json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["x"]}});
        assert_eq!(round_trip(o.clone(), o), json!({}));
    }
}
