//! A strategy for a kind with typed rules: the object is decoded into its k8s-openapi
//! type, the kind's [`KindRules`] (upstream's defaults, PrepareFor* and validation, from
//! the `validation` crate) run on it, and the generic rules (metadata validation,
//! selectable fields, scope) come from a [`GenericStrategy`].

use crate::strategy::{GenericStrategy, Strategy};
use apimachinery::field::{FieldError, Path};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::marker::PhantomData;
use validation::{KindRules, UserInfo};

/// Typed rules of kind `K` on top of generic ones.
pub struct TypedStrategy<K> {
    /// The generic rules.
    pub generic: GenericStrategy,
    /// Whether ObjectMeta is validated generically (upstream skips it for v1 Events).
    pub validate_meta: bool,
    kind: PhantomData<fn() -> K>,
}

impl<K> TypedStrategy<K> {
    /// Typed rules of `K` with `generic` ones.
    pub const fn new(generic: GenericStrategy, validate_meta: bool) -> TypedStrategy<K> {
        TypedStrategy {
            generic,
            validate_meta,
            kind: PhantomData,
        }
    }
}

impl<K> TypedStrategy<K>
where
    K: KindRules + DeserializeOwned + Serialize + 'static,
{
    /// Defaults, prepares (for `user` when known) and validates a new object in one
    /// decoding.
    fn create_by(&self, obj: &mut Value, user: Option<&UserInfo<'_>>) -> Vec<FieldError> {
        let mut k = match decode::<K>(obj) {
            Ok(k) => k,
            Err(e) => return vec![e],
        };
        k.default();
        k.prepare_for_create();
        if let Some(user) = user {
            k.prepare_for_create_by(user);
        }
        let mut errs = k.validate();
        encode(&k, obj);
        if self.validate_meta {
            let mut all = self.generic.validate(obj);
            all.append(&mut errs);
            errs = all;
        }
        errs
    }
}

fn decode<K: DeserializeOwned>(obj: &Value) -> Result<K, FieldError> {
    // Deserializing from a borrowed value avoids copying the whole object first.
    K::deserialize(obj)
        .map_err(|e| FieldError::invalid(&Path::default(), Value::Null, e.to_string()))
}

/// Writes a typed object back, keeping `metadata.resourceVersion` (the typed form
/// would keep it too, but callers rely on it being untouched).
fn encode<K: Serialize>(k: &K, obj: &mut Value) {
    if let Ok(v) = serde_json::to_value(k) {
        *obj = v;
    }
}

impl<K> Strategy for TypedStrategy<K>
where
    K: KindRules + DeserializeOwned + Serialize + 'static,
{
    fn prepare_for_create(&self, obj: &mut Value) {
        let Ok(mut k) = decode::<K>(obj) else { return };
        k.default();
        k.prepare_for_create();
        encode(&k, obj);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = if self.validate_meta {
            self.generic.validate(obj)
        } else {
            Vec::new()
        };
        match decode::<K>(obj) {
            Ok(k) => errs.extend(k.validate()),
            Err(e) => errs.push(e),
        }
        errs
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let (Ok(mut n), Ok(o)) = (decode::<K>(new), decode::<K>(old)) else {
            return;
        };
        n.default();
        n.prepare_for_update(&o);
        encode(&n, new);
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = if self.validate_meta {
            self.generic.validate_update(new, old)
        } else {
            Vec::new()
        };
        match (decode::<K>(new), decode::<K>(old)) {
            (Ok(n), Ok(o)) => errs.extend(n.validate_update(&o)),
            (Err(e), _) | (_, Err(e)) => errs.push(e),
        }
        errs
    }

    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        let (Ok(mut n), Ok(o)) = (decode::<K>(new), decode::<K>(old)) else {
            return;
        };
        n.prepare_for_status_update(&o);
        encode(&n, new);
    }

    fn validate_status_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = if self.validate_meta {
            self.generic.validate_update(new, old)
        } else {
            Vec::new()
        };
        match (decode::<K>(new), decode::<K>(old)) {
            (Ok(n), Ok(o)) => errs.extend(n.validate_status_update(&o)),
            (Err(e), _) | (_, Err(e)) => errs.push(e),
        }
        errs
    }

    fn create(&self, obj: &mut Value) -> Vec<FieldError> {
        self.create_by(obj, None)
    }

    fn create_as(&self, obj: &mut Value, user: &UserInfo<'_>) -> Vec<FieldError> {
        self.create_by(obj, Some(user))
    }

    fn update_subresource(
        &self,
        subresource: &str,
        new: &mut Value,
        old: &Value,
    ) -> Option<Vec<FieldError>> {
        let (mut n, o) = match (decode::<K>(new), decode::<K>(old)) {
            (Ok(n), Ok(o)) => (n, o),
            (Err(e), _) | (_, Err(e)) => return Some(vec![e]),
        };
        let mut errs = n.update_subresource(subresource, &o)?;
        encode(&n, new);
        if self.validate_meta {
            let mut all = self.generic.validate_update(new, old);
            all.append(&mut errs);
            errs = all;
        }
        Some(errs)
    }

    fn update(&self, new: &mut Value, old: &Value, status: bool) -> Vec<FieldError> {
        let (mut n, o) = match (decode::<K>(new), decode::<K>(old)) {
            (Ok(n), Ok(o)) => (n, o),
            (Err(e), _) | (_, Err(e)) => return vec![e],
        };
        let mut errs = if status {
            n.prepare_for_status_update(&o);
            n.validate_status_update(&o)
        } else {
            n.default();
            n.prepare_for_update(&o);
            n.validate_update(&o)
        };
        encode(&n, new);
        if self.validate_meta {
            let mut all = self.generic.validate_update(new, old);
            all.append(&mut errs);
            errs = all;
        }
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        self.generic.selectable_fields(obj)
    }

    fn field_labels(&self) -> &'static [&'static str] {
        self.generic.field_labels()
    }

    fn allow_create_on_update(&self) -> bool {
        self.generic.allow_create_on_update()
    }

    fn allow_unconditional_update(&self) -> bool {
        self.generic.allow_unconditional_update()
    }
}
