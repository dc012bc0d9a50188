//! The storage conformance suite: the behaviour every [`Storage`] backend must show.
//!
//! Each check takes a fresh store and a key prefix of its own and panics on the first
//! deviation. [`conformance_suite!`](crate::conformance_suite) turns the whole list into
//! `#[tokio::test]`s for one backend, so every backend runs exactly the same checks.

use crate::{
    guaranteed_update, EventKind, ListOptions, ReadAt, Revision, Storage, StoreError, UpdateAction,
    WatchItem, WatchStream, MAX_VALUE_BYTES,
};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Next change from a watch (progress notifications skipped), or panic after 10 s.
pub async fn next_event(w: &mut WatchStream) -> crate::Event {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch produced nothing within 10s")
            .expect("watch ended")
            .expect("watch failed");
        if let WatchItem::Event(e) = item {
            return e;
        }
    }
}

/// Create, get, duplicate create.
pub async fn create_and_get(s: Arc<dyn Storage>, p: &str) {
    let key = format!("{p}/a");
    let before = s.current_revision().await.unwrap();
    let rev = s.create(&key, b("one")).await.unwrap();
    assert!(rev > before, "create revision {rev} not after {before}");
    let kv = s.get(&key).await.unwrap().expect("created key missing");
    assert_eq!(kv.value, b("one"));
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(kv.create_revision, rev);
    match s.create(&key, b("two")).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => panic!("duplicate create gave {other:?}"),
    }
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b("one"));
    assert!(s.get(&format!("{p}/missing")).await.unwrap().is_none());
    assert!(s.current_revision().await.unwrap() >= rev);
}

/// Compare-and-swap updates.
pub async fn update_cas(s: Arc<dyn Storage>, p: &str) {
    let key = format!("{p}/a");
    let r1 = s.create(&key, b("v1")).await.unwrap();
    let r2 = s.update(&key, b("v2"), r1).await.unwrap();
    assert!(r2 > r1);
    match s.update(&key, b("v3"), r1).await {
        Err(StoreError::Conflict {
            actual, current, ..
        }) => {
            assert_eq!(actual, r2);
            if let Some(cur) = current {
                assert_eq!(cur.value, b("v2"));
                assert_eq!(cur.mod_revision, r2);
            }
        }
        other => panic!("stale update gave {other:?}"),
    }
    let kv = s.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (kv.value, kv.mod_revision, kv.create_revision),
        (b("v2"), r2, r1)
    );
    match s.update(&format!("{p}/missing"), b("x"), 1).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("update of missing key gave {other:?}"),
    }
}

/// Deletes with and without preconditions.
pub async fn delete_preconditions(s: Arc<dyn Storage>, p: &str) {
    let key = format!("{p}/a");
    let r1 = s.create(&key, b("v1")).await.unwrap();
    let r2 = s.update(&key, b("v2"), r1).await.unwrap();
    match s.delete(&key, Some(r1)).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, r2),
        other => panic!("stale delete gave {other:?}"),
    }
    assert!(s.get(&key).await.unwrap().is_some());
    let (prev, rd) = s.delete(&key, Some(r2)).await.unwrap();
    assert!(rd > r2);
    assert_eq!(prev.value, b("v2"));
    assert!(s.get(&key).await.unwrap().is_none());
    match s.delete(&key, None).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("delete of missing key gave {other:?}"),
    }
    // Re-creating starts a new generation.
    let r3 = s.create(&key, b("v3")).await.unwrap();
    assert_eq!(s.get(&key).await.unwrap().unwrap().create_revision, r3);
    let (prev, _) = s.delete(&key, None).await.unwrap();
    assert_eq!(prev.value, b("v3"));
}

/// Prefix isolation, order, pagination and counts.
pub async fn list_pagination(s: Arc<dyn Storage>, p: &str) {
    let names = ["c", "a", "e", "b", "d"];
    for n in names {
        s.create(&format!("{p}/items/{n}"), b(n)).await.unwrap();
    }
    // A sibling whose name extends the prefix must not leak in.
    s.create(&format!("{p}/itemsx/z"), b("z")).await.unwrap();
    let prefix = format!("{p}/items/");
    let all = s.list(&prefix, ListOptions::default()).await.unwrap();
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.clone()).collect();
    let want: Vec<_> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| format!("{prefix}{n}"))
        .collect();
    assert_eq!(keys, want);
    assert!(!all.more);
    let at = all.revision;
    assert!(at >= all.items.iter().map(|kv| kv.mod_revision).max().unwrap());

    let page1 = s
        .list(
            &prefix,
            ListOptions {
                at: ReadAt::Latest,
                start: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(page1.items.len(), 2);
    assert!(page1.more);
    assert_eq!(page1.remaining, 3);
    // A write between pages must not show up in later pages read at the same revision.
    s.create(&format!("{prefix}bb"), b("bb")).await.unwrap();
    let page2 = s
        .list(
            &prefix,
            ListOptions {
                at: ReadAt::Exact(page1.revision),
                start: Some(format!("{}\0", page1.items[1].key)),
                limit: 2,
            },
        )
        .await
        .unwrap();
    let keys: Vec<_> = page2.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![format!("{prefix}c"), format!("{prefix}d")]);
    assert!(page2.more);
    assert_eq!(page2.remaining, 1);
    let page3 = s
        .list(
            &prefix,
            ListOptions {
                at: ReadAt::Exact(page1.revision),
                start: Some(format!("{}\0", page2.items[1].key)),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(page3.items.len(), 1);
    assert!(!page3.more);
    let latest = s.list(&prefix, ListOptions::default()).await.unwrap();
    assert_eq!(latest.items.len(), 6);
}

/// Reads at an older revision see the state of that revision.
pub async fn list_at_revision(s: Arc<dyn Storage>, p: &str) {
    let key = format!("{p}/k");
    let r1 = s.create(&key, b("v1")).await.unwrap();
    let r2 = s.update(&key, b("v2"), r1).await.unwrap();
    s.delete(&key, None).await.unwrap();
    let other = format!("{p}/other");
    s.create(&other, b("o")).await.unwrap();
    let prefix = format!("{p}/");
    let at = |rev| ListOptions {
        at: ReadAt::Exact(rev),
        ..Default::default()
    };
    let l1 = s.list(&prefix, at(r1)).await.unwrap();
    assert_eq!(l1.items.len(), 1);
    assert_eq!(l1.items[0].value, b("v1"));
    assert_eq!(l1.revision, r1);
    let l2 = s.list(&prefix, at(r2)).await.unwrap();
    assert_eq!(l2.items[0].value, b("v2"));
    let now = s.list(&prefix, ListOptions::default()).await.unwrap();
    assert_eq!(now.items.len(), 1);
    assert_eq!(now.items[0].key, other);
    let future = now.revision + 1000;
    assert!(s.list(&prefix, at(future)).await.is_err());
}

/// A watch from now delivers later changes, in order, with kinds and previous values.
pub async fn watch_live(s: Arc<dyn Storage>, p: &str) {
    let prefix = format!("{p}/w/");
    let mut w = s.watch(&prefix, 0).await.unwrap();
    let key = format!("{prefix}a");
    let r1 = s.create(&key, b("v1")).await.unwrap();
    s.create(&format!("{p}/elsewhere"), b("x")).await.unwrap();
    let r2 = s.update(&key, b("v2"), r1).await.unwrap();
    let (_, r3) = s.delete(&key, None).await.unwrap();
    let e1 = next_event(&mut w).await;
    assert_eq!(
        (e1.kind, e1.revision, e1.value.clone()),
        (EventKind::Created, r1, b("v1"))
    );
    let e2 = next_event(&mut w).await;
    assert_eq!(
        (e2.kind, e2.revision, e2.value.clone()),
        (EventKind::Updated, r2, b("v2"))
    );
    assert_eq!(e2.prev_value, Some(b("v1")));
    let e3 = next_event(&mut w).await;
    assert_eq!(e3.kind, EventKind::Deleted);
    assert_eq!(e3.revision, r3);
    assert_eq!(e3.value, b("v2"), "a deletion carries the last value");
    assert_eq!(e3.key, key);
}

/// A watch from a past revision replays history exactly, then continues live.
pub async fn watch_from_revision(s: Arc<dyn Storage>, p: &str) {
    let prefix = format!("{p}/h/");
    let start = s.create(&format!("{prefix}0"), b("start")).await.unwrap();
    let mut revs = Vec::new();
    for i in 1..=20 {
        revs.push(
            s.create(&format!("{prefix}{i}"), b(&i.to_string()))
                .await
                .unwrap(),
        );
    }
    let mut w = s.watch(&prefix, start).await.unwrap();
    for (i, rev) in revs.iter().enumerate() {
        let e = next_event(&mut w).await;
        assert_eq!(e.revision, *rev);
        assert_eq!(e.kind, EventKind::Created);
        assert_eq!(e.value, b(&(i + 1).to_string()));
    }
    let live = s
        .update(&format!("{prefix}0"), b("again"), start)
        .await
        .unwrap();
    let e = next_event(&mut w).await;
    assert_eq!((e.revision, e.kind), (live, EventKind::Updated));
    assert_eq!(e.prev_value, Some(b("start")));
}

/// Many concurrent writers: every write acknowledged once with a unique revision, and
/// nothing is lost.
pub async fn concurrent_writes(s: Arc<dyn Storage>, p: &str) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        let p = p.to_string();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..50 {
                revs.push(s.create(&format!("{p}/c/{t}-{i}"), b("x")).await.unwrap());
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "two writes shared a revision");
    let list = s
        .list(&format!("{p}/c/"), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(list.items.len(), 400);
}

/// `guaranteed_update` from many tasks never loses an increment.
pub async fn guaranteed_update_counts(s: Arc<dyn Storage>, p: &str) {
    let key = format!("{p}/counter");
    s.create(&key, b("0")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                guaranteed_update::<dyn Storage, _, StoreError>(&*s, &key, |kv| {
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    Ok(UpdateAction::Put(b(&(n + 1).to_string())))
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b("100"));
    let kept =
        guaranteed_update::<dyn Storage, _, StoreError>(&*s, &key, |_| Ok(UpdateAction::Keep))
            .await
            .unwrap();
    assert_eq!(kept.value, b("100"));
    let missing =
        guaranteed_update::<dyn Storage, _, StoreError>(&*s, &format!("{p}/nope"), |_| {
            Ok(UpdateAction::Keep)
        })
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

/// Values over the limit are refused and change nothing.
pub async fn too_large(s: Arc<dyn Storage>, p: &str) {
    let key = format!("{p}/big");
    let big = Bytes::from(vec![b'x'; MAX_VALUE_BYTES + 1]);
    match s.create(&key, big.clone()).await {
        Err(StoreError::TooLarge { .. }) => {}
        other => panic!("oversized create gave {other:?}"),
    }
    assert!(s.get(&key).await.unwrap().is_none());
    let r = s.create(&key, b("small")).await.unwrap();
    assert!(matches!(
        s.update(&key, big, r).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b("small"));
}

/// After compaction old revisions are gone, current data is intact, and history after
/// the compaction point still works.
pub async fn compaction(s: Arc<dyn Storage>, p: &str) {
    let key = format!("{p}/k");
    let r1 = s.create(&key, b("v1")).await.unwrap();
    let mut last = r1;
    for i in 2..=5 {
        last = s.update(&key, b(&format!("v{i}")), last).await.unwrap();
    }
    let gone = format!("{p}/gone");
    s.create(&gone, b("g")).await.unwrap();
    let (_, del) = s.delete(&gone, None).await.unwrap();
    let mid = s.update(&key, b("v6"), last).await.unwrap();
    let after = s.update(&key, b("v7"), mid).await.unwrap();
    s.compact(mid).await.unwrap();
    assert!(s.compacted_revision().await.unwrap() >= mid);
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b("v7"));
    assert!(s.get(&gone).await.unwrap().is_none());
    let old = s
        .list(
            &format!("{p}/"),
            ListOptions {
                at: ReadAt::Exact(r1),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(old, Err(StoreError::Compacted { .. })), "{old:?}");
    let at_mid = s
        .list(
            &format!("{p}/"),
            ListOptions {
                at: ReadAt::Exact(mid),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at_mid.items.len(), 1);
    assert_eq!(at_mid.items[0].value, b("v6"));
    // A watch from before the compaction either fails with Compacted or (a cache that
    // still holds the events) replays them exactly.
    match s.watch(&format!("{p}/"), del - 1).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(e) => panic!("watch from compacted revision failed oddly: {e}"),
        Ok(mut w) => loop {
            match w.next().await {
                Some(Ok(WatchItem::Progress(_))) => continue,
                Some(Err(StoreError::Compacted { .. })) => break,
                Some(Ok(WatchItem::Event(e))) => {
                    assert_eq!(e.revision, del);
                    break;
                }
                other => panic!("watch from compacted revision gave {other:?}"),
            }
        },
    }
    let mut w = s.watch(&format!("{p}/"), mid).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!((e.revision, e.prev_value), (after, Some(b("v6"))));
    assert!(matches!(
        s.compact(mid).await,
        Err(StoreError::Compacted { .. })
    ));
    let _: Revision = after;
}

/// Declares one `#[tokio::test]` per conformance check. `$make` is an async expression
/// evaluating to `(Arc<dyn Storage>, guard)`; the guard lives until the test ends.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            create_and_get, update_cas, delete_preconditions, list_pagination,
            list_at_revision, watch_live, watch_from_revision, concurrent_writes,
            guaranteed_update_counts, too_large, compaction);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $make;
                $crate::conformance::$name(store, concat!("/registry/", stringify!($name))).await;
            }
        )*
    };
}
