//! The loop that runs an operator's reconciles ([`Controller`]): wake-ups from watches, one
//! reconcile per object at a time, requeues, a bound on concurrency, graceful shutdown.
//!
//! It keeps kube-runtime's `Controller` contract (the same builder, the same results) but not
//! its scheduler. kube-runtime queues every wake-up, even one due now, in a `DelayQueue`
//! whose deadlines are rounded up to the next millisecond and served by the timer, so each
//! wake-up waited 1–2 ms before its reconcile started (measured in the operator's log, between
//! a dependency's watch event and its dependent's reconcile). A release hand-off takes three
//! such wake-ups (the dependent; the workload's status waking its release; the simulator's
//! first sight of the workload), so they were a fifth of its cost. Here a wake-up due now is run at once; only a requeue for later waits
//! on the timer.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered, SelectAll};
use futures::{FutureExt as _, Stream, StreamExt as _};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

/// What a reconcile asks for next: to run again after a while, or only on a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Run again after `duration` even if nothing changes (a change runs it sooner).
    #[must_use]
    pub const fn requeue(duration: Duration) -> Self {
        Self {
            requeue_after: Some(duration),
        }
    }

    /// Run again only when a watch reports a change.
    #[must_use]
    pub const fn await_change() -> Self {
        Self {
            requeue_after: None,
        }
    }

    /// When to run again without a change, if at all.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// How a [`Controller`] runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerConfig {
    /// At most this many reconciles at once (0: no bound).
    pub concurrency: u16,
}

/// Why a wake-up did not end in a successful reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError<E: std::error::Error + 'static> {
    /// The reconcile returned an error; `error_policy` chose when to try again.
    #[error("reconcile of {1} failed")]
    ReconcilerFailed(#[source] E, Box<ObjectRef<DynamicKind>>),
    /// The object woken is not in the store (deleted meanwhile, or never seen).
    #[error("object {0} is not in the store")]
    ObjectNotFound(Box<ObjectRef<DynamicKind>>),
    /// A watch feeding wake-ups failed; it retries with its backoff.
    #[error("a watch of wake-ups failed: {0}")]
    Watch(#[source] watcher::Error),
}

/// The kind-erased object reference errors carry (as kube-runtime's `ObjectRef::erase`).
pub type DynamicKind = kube::api::DynamicObject;

/// The result of one wake-up, as `run` yields it.
pub type RunResult<K, E> = Result<(ObjectRef<K>, Action), ControllerError<E>>;

type Wakeups<K> = BoxStream<'static, Result<ObjectRef<K>, watcher::Error>>;

/// Runs reconciles of `K` for the objects of a store, woken by watches (see the module).
pub struct Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    store: Store<K>,
    wakeups: Vec<Wakeups<K>>,
    concurrency: usize,
    shutdown: Option<BoxFuture<'static, ()>>,
    priority: Option<PriorityFn<K>>,
}

type PriorityFn<K> = Box<dyn Fn(&K) -> u8 + Send>;

impl<K> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A controller of the objects `api` lists with `config`, each woken by its own changes
    /// (the watch retries with kube-runtime's default backoff).
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let changes = reflector(writer, watcher(api, config).default_backoff()).applied_objects();
        Self::for_stream(changes, store)
    }

    /// A controller of the objects in `store`, each woken by `changes` (the stream that
    /// also fills the store: it is polled from the start, before the store is ready).
    pub fn for_stream(
        changes: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
        store: Store<K>,
    ) -> Self {
        Controller {
            store,
            wakeups: vec![
                changes
                    .map(|change| change.map(|object| ObjectRef::from_obj(&object)))
                    .boxed(),
            ],
            concurrency: 0,
            shutdown: None,
            priority: None,
        }
    }

    /// Applies `config` (the bound on reconciles at once).
    #[must_use]
    pub fn with_config(mut self, config: ControllerConfig) -> Self {
        self.concurrency = usize::from(config.concurrency);
        self
    }

    /// Orders the objects due at once: a higher `priority` (of the object as the store holds
    /// it when woken) first, then the order they were woken in. Without it: that order only.
    #[must_use]
    pub fn with_priority(mut self, priority: impl Fn(&K) -> u8 + Send + 'static) -> Self {
        self.priority = Some(Box::new(priority));
        self
    }

    /// Wakes each object `objects` names.
    #[must_use]
    pub fn reconcile_on(
        mut self,
        objects: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    ) -> Self {
        self.wakeups.push(objects.map(Ok).boxed());
        self
    }

    /// Wakes the objects `mapper` names for each change `changes` reports.
    #[must_use]
    pub fn watches_stream<O, I>(
        mut self,
        changes: impl Stream<Item = Result<O, watcher::Error>> + Send + 'static,
        mapper: impl Fn(O) -> I + Send + Sync + 'static,
    ) -> Self
    where
        O: Send + 'static,
        I: IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        let woken = changes
            .map(move |change| match change {
                Ok(object) => {
                    futures::stream::iter(mapper(object).into_iter().map(Ok)).left_stream()
                }
                Err(error) => futures::stream::once(async move { Err(error) }).right_stream(),
            })
            .flatten();
        self.wakeups.push(woken.boxed());
        self
    }

    /// Wakes the objects `mapper` names for each change to the objects `api` lists with
    /// `config` (the watch retries with kube-runtime's default backoff).
    #[must_use]
    pub fn watches<O, I>(
        self,
        api: Api<O>,
        config: watcher::Config,
        mapper: impl Fn(O) -> I + Send + Sync + 'static,
    ) -> Self
    where
        O: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        I: IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        let changes = watcher(api, config).default_backoff().touched_objects();
        self.watches_stream(changes, mapper)
    }

    /// Stops taking wake-ups once `shutdown` completes; reconciles in flight finish, then the
    /// stream `run` returns ends.
    #[must_use]
    pub fn graceful_shutdown_on(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.shutdown = Some(shutdown.boxed());
        self
    }

    /// Runs `reconcile` for each object woken, once the store holds the initial list, and
    /// yields the result of each run; after an error, `error_policy` says when to try again.
    pub fn run<F, E, Ctx>(
        self,
        reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> F + Send + 'static,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + 'static,
        context: Arc<Ctx>,
    ) -> impl Stream<Item = RunResult<K, E>> + Send
    where
        F: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::error::Error + Send + 'static,
        Ctx: Send + Sync + 'static,
    {
        let Controller {
            store,
            wakeups,
            concurrency,
            shutdown,
            priority,
        } = self;
        let ready = {
            let store = store.clone();
            async move {
                // A dropped writer means the watch ended: nothing will ever be in the store.
                let _ = store.wait_until_ready().await;
            }
        };
        let state = Runner {
            store,
            wakeups: wakeups.into_iter().collect(),
            taking: true,
            ready: ready.boxed(),
            is_ready: false,
            shutdown,
            queue: Queue::default(),
            running: FuturesUnordered::new(),
            concurrency,
            priority,
            reconcile,
            error_policy,
            context,
        };
        futures::stream::unfold(state, |mut state| async move {
            let result = state.next().await?;
            Some((result, state))
        })
    }
}

type Running<K, E> = JoinHandle<(ObjectRef<K>, Arc<K>, Result<Action, E>)>;

/// The state of a running controller; see [`Runner::next`].
struct Runner<K, R, P, Ctx, E>
where
    K: Resource<DynamicType = ()> + 'static,
{
    store: Store<K>,
    wakeups: SelectAll<Wakeups<K>>,
    /// False once shut down (or every wake-up stream ended): no more wake-ups are taken.
    taking: bool,
    /// The store holds the initial list: reconciles may start.
    ready: BoxFuture<'static, ()>,
    is_ready: bool,
    shutdown: Option<BoxFuture<'static, ()>>,
    queue: Queue<ObjectRef<K>>,
    running: FuturesUnordered<Running<K, E>>,
    concurrency: usize,
    priority: Option<PriorityFn<K>>,
    reconcile: R,
    error_policy: P,
    context: Arc<Ctx>,
}

impl<K, F, E, Ctx, R, P> Runner<K, R, P, Ctx, E>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<Ctx>) -> F,
    P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action,
    F: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
    Ctx: Send + Sync + 'static,
{
    /// Works until one wake-up has a result to report; `None` once shut down and idle.
    async fn next(&mut self) -> Option<RunResult<K, E>> {
        loop {
            if let Some(result) = self.start_due() {
                return Some(result);
            }
            if !self.taking && self.running.is_empty() {
                return None;
            }
            let shutdown_on = &mut self.shutdown;
            let shutdown = async {
                match shutdown_on {
                    Some(shutdown) => shutdown.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(finished) = self.running.next(), if !self.running.is_empty() => {
                    let (object, obj, result) = match finished {
                        Ok(finished) => finished,
                        // As kube-runtime: a reconcile that panicked takes the operator down.
                        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                        Err(_) => continue,
                    };
                    return Some(self.finished(object, obj, result));
                }
                () = shutdown, if self.taking => {
                    self.shutdown = None;
                    self.taking = false;
                    self.queue.clear();
                }
                woken = self.wakeups.next(), if self.taking => match woken {
                    Some(Ok(object)) => self.wake(object),
                    Some(Err(error)) => return Some(Err(ControllerError::Watch(error))),
                    None => {
                        self.taking = false;
                        self.queue.clear();
                    }
                },
                () = self.ready.as_mut(), if !self.is_ready => self.is_ready = true,
                Some(due) = self.queue.next_delayed(), if self.taking && !self.queue.delayed.is_empty() => self.wake(due),
            }
        }
    }

    /// `object` is due now, at its priority.
    fn wake(&mut self, object: ObjectRef<K>) {
        let priority = match &self.priority {
            Some(priority) => self.store.get(&object).map_or(0, |obj| priority(&obj)),
            None => 0,
        };
        self.queue.wake_at(object, priority);
    }

    /// Starts the reconciles due now, while there is room; reports a woken object missing
    /// from the store.
    fn start_due(&mut self) -> Option<RunResult<K, E>> {
        if !self.is_ready || !self.taking {
            return None;
        }
        while self.concurrency == 0 || self.running.len() < self.concurrency {
            let object = self.queue.take_ready()?;
            let Some(obj) = self.store.get(&object) else {
                self.queue.finished(&object);
                return Some(Err(ControllerError::ObjectNotFound(Box::new(
                    object.erase(),
                ))));
            };
            let future = (self.reconcile)(obj.clone(), self.context.clone());
            let span = tracing::info_span!(
                "reconciling object",
                "object.ref" = %object,
            );
            let key = object.clone();
            self.running.push(tokio::spawn(
                async move { (key, obj, future.await) }.instrument(span),
            ));
        }
        None
    }

    /// What a finished reconcile leads to: its next run, and the result to report.
    fn finished(
        &mut self,
        object: ObjectRef<K>,
        obj: Arc<K>,
        result: Result<Action, E>,
    ) -> RunResult<K, E> {
        let action = match &result {
            Ok(action) => *action,
            Err(error) => (self.error_policy)(obj, error, self.context.clone()),
        };
        self.queue.finished(&object);
        if self.taking
            && let Some(after) = action.requeue_after()
        {
            self.queue.requeue(object.clone(), after);
        }
        match result {
            Ok(action) => Ok((object, action)),
            Err(error) => Err(ControllerError::ReconcilerFailed(
                error,
                Box::new(object.erase()),
            )),
        }
    }
}

/// Which objects are due, which wait for a time, which are being reconciled.
struct Queue<T: Clone + Eq + Hash> {
    /// Due now, by priority (highest first), each in the order woken.
    ready: BTreeMap<Reverse<u8>, VecDeque<T>>,
    /// What is in `ready`, with its priority.
    due: HashMap<T, u8>,
    /// Due later (a requeue), with the time; at most one entry each, the earliest.
    delayed: HashMap<T, (Instant, u64)>,
    /// The same, by time (then by when requeued). A sleep until the first of them, not a
    /// `DelayQueue`, which rounds every deadline up to a millisecond past its own start
    /// before the timer rounds it again.
    timers: BTreeMap<(Instant, u64), T>,
    requeues: u64,
    /// Being reconciled; woken again meanwhile when in `rerun` (run once it finishes).
    running: HashSet<T>,
    rerun: HashSet<T>,
}

impl<T: Clone + Eq + Hash> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            ready: BTreeMap::new(),
            due: HashMap::new(),
            delayed: HashMap::new(),
            timers: BTreeMap::new(),
            requeues: 0,
            running: HashSet::new(),
            rerun: HashSet::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> Queue<T> {
    /// `item` is due now: run after those woken before it, or once its run in flight ends.
    fn wake(&mut self, item: T) {
        self.wake_at(item, 0);
    }

    /// [`Queue::wake`] at `priority`: after the items due at a higher one. Woken again at a
    /// higher one, an item moves up.
    fn wake_at(&mut self, item: T, priority: u8) {
        if let Some(key) = self.delayed.remove(&item) {
            self.timers.remove(&key);
        }
        if self.running.contains(&item) {
            self.rerun.insert(item);
            return;
        }
        match self.due.get(&item) {
            Some(&queued) if queued >= priority => return,
            Some(&queued) => {
                if let Some(bucket) = self.ready.get_mut(&Reverse(queued)) {
                    bucket.retain(|i| i != &item);
                }
            }
            None => {}
        }
        self.due.insert(item.clone(), priority);
        self.ready
            .entry(Reverse(priority))
            .or_default()
            .push_back(item);
    }

    /// `item` is due after `after`, unless it is due sooner already.
    fn requeue(&mut self, item: T, after: Duration) {
        if after.is_zero() {
            return self.wake(item);
        }
        if self.due.contains_key(&item) || self.rerun.contains(&item) {
            return;
        }
        let at = Instant::now() + after;
        if let Some(&(when, seq)) = self.delayed.get(&item) {
            if when <= at {
                return;
            }
            self.timers.remove(&(when, seq));
        }
        self.requeues += 1;
        let key = (at, self.requeues);
        self.timers.insert(key, item.clone());
        self.delayed.insert(item, key);
    }

    /// The next item due now that is not being reconciled, marked as running.
    fn take_ready(&mut self) -> Option<T> {
        let mut bucket = self.ready.first_entry()?;
        let item = bucket.get_mut().pop_front()?;
        if bucket.get().is_empty() {
            bucket.remove();
        }
        self.due.remove(&item);
        self.running.insert(item.clone());
        Some(item)
    }

    /// The run of `item` ended: woken meanwhile, it is due again now.
    fn finished(&mut self, item: &T) {
        self.running.remove(item);
        if self.rerun.remove(item) {
            self.wake(item.clone());
        }
    }

    /// The next delayed item whose time came (pending while none is delayed).
    async fn next_delayed(&mut self) -> Option<T> {
        let (&(at, _), _) = self.timers.first_key_value()?;
        tokio::time::sleep_until(at).await;
        let (_, item) = self.timers.pop_first()?;
        self.delayed.remove(&item);
        Some(item)
    }

    /// Forgets everything not in flight (shut down).
    fn clear(&mut self) {
        self.ready.clear();
        self.due.clear();
        self.delayed.clear();
        self.timers.clear();
        self.rerun.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Queue<&'static str> {
        Queue::default()
    }

    #[test]
    fn an_object_woken_twice_before_it_runs_runs_once() {
        let mut q = queue();
        q.wake("a");
        q.wake("b");
        q.wake("a");
        assert_eq!(q.take_ready(), Some("a"));
        assert_eq!(q.take_ready(), Some("b"));
        assert_eq!(q.take_ready(), None);
    }

    #[test]
    fn an_object_woken_while_it_runs_runs_again_once_it_ends() {
        let mut q = queue();
        q.wake("a");
        assert_eq!(q.take_ready(), Some("a"));
        q.wake("a");
        q.wake("a");
        assert_eq!(q.take_ready(), None, "never two runs of one object at once");
        q.finished(&"a");
        assert_eq!(q.take_ready(), Some("a"));
        q.finished(&"a");
        assert_eq!(q.take_ready(), None);
    }

    #[test]
    fn a_run_woken_meanwhile_drops_its_own_requeue() {
        let mut q = queue();
        q.wake("a");
        q.take_ready();
        q.wake("a");
        q.finished(&"a");
        q.requeue("a", Duration::from_secs(60));
        assert!(
            q.delayed.is_empty(),
            "the run woken meanwhile decides what comes next"
        );
        assert_eq!(q.take_ready(), Some("a"));
    }

    #[tokio::test]
    async fn a_requeue_keeps_the_earliest_time_and_a_wake_up_comes_first() {
        let mut q = queue();
        q.requeue("a", Duration::from_millis(40));
        q.requeue("a", Duration::from_secs(60));
        q.requeue("b", Duration::from_millis(10));
        let started = Instant::now();
        assert_eq!(q.next_delayed().await, Some("b"));
        assert_eq!(q.next_delayed().await, Some("a"));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(40) && waited < Duration::from_secs(30),
            "the earlier requeue of a counts: {waited:?}"
        );

        q.requeue("c", Duration::from_secs(10));
        q.wake("c");
        assert!(
            q.delayed.is_empty() && q.timers.is_empty(),
            "woken now, not later too"
        );
        assert_eq!(q.take_ready(), Some("c"));
    }

    #[test]
    fn a_higher_priority_runs_first_and_a_wake_up_at_a_higher_one_moves_an_item_up() {
        let mut q = queue();
        q.wake("waits-1");
        q.wake("waits-2");
        q.wake_at("can-go", 1);
        q.wake_at("waits-2", 1);
        q.wake_at("can-go", 0);
        assert_eq!(
            q.take_ready(),
            Some("can-go"),
            "a lower wake-up does not move it down"
        );
        assert_eq!(q.take_ready(), Some("waits-2"));
        assert_eq!(q.take_ready(), Some("waits-1"));
        assert_eq!(q.take_ready(), None);
    }

    #[test]
    fn a_zero_requeue_is_a_wake_up() {
        let mut q = queue();
        q.requeue("a", Duration::ZERO);
        assert_eq!(q.take_ready(), Some("a"));
    }

    mod run {
        use std::sync::Mutex;

        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::runtime::reflector::store::Writer;
        use tokio::sync::{Notify, mpsc};

        use super::super::*;

        fn config_map(name: &str) -> ConfigMap {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.to_owned());
            cm.metadata.namespace = Some("ns".to_owned());
            cm
        }

        #[derive(Debug, thiserror::Error)]
        #[error("never")]
        struct Never;

        struct Seen {
            runs: Mutex<Vec<String>>,
            release: Notify,
        }

        type Results = mpsc::UnboundedReceiver<RunResult<ConfigMap, Never>>;

        /// A controller woken through a channel, over a store filled by hand, run by a task of
        /// its own: each reconcile records its object, the first run of `slow` waits for
        /// `release`; its results come out of the channel returned.
        fn controller(
            store: Store<ConfigMap>,
        ) -> (
            mpsc::UnboundedSender<ObjectRef<ConfigMap>>,
            tokio::sync::oneshot::Sender<()>,
            Arc<Seen>,
            Results,
        ) {
            let (wake, woken) = mpsc::unbounded_channel();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let seen = Arc::new(Seen {
                runs: Mutex::new(Vec::new()),
                release: Notify::new(),
            });
            let results = Controller::for_stream(futures::stream::pending(), store)
                .reconcile_on(tokio_stream_of(woken))
                .graceful_shutdown_on(async move {
                    let _ = stopped.await;
                })
                .run(
                    |cm: Arc<ConfigMap>, seen: Arc<Seen>| async move {
                        let name = cm.metadata.name.clone().unwrap_or_default();
                        let first = {
                            let mut runs = seen.runs.lock().unwrap_or_else(|e| e.into_inner());
                            runs.push(name.clone());
                            runs.iter().filter(|n| **n == name).count() == 1
                        };
                        if name == "slow" && first {
                            seen.release.notified().await;
                        }
                        Ok::<_, Never>(Action::await_change())
                    },
                    |_, _, _| Action::await_change(),
                    seen.clone(),
                );
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut results = Box::pin(results);
                while let Some(result) = results.next().await {
                    let _ = tx.send(result);
                }
            });
            (wake, stop, seen, rx)
        }

        /// The initial list, without its end: the store is not ready yet.
        fn fill(writer: &mut Writer<ConfigMap>) {
            writer.apply_watcher_event(&watcher::Event::Init);
            for name in ["a", "slow"] {
                writer.apply_watcher_event(&watcher::Event::InitApply(config_map(name)));
            }
        }

        fn tokio_stream_of<T: Send + 'static>(
            mut rx: mpsc::UnboundedReceiver<T>,
        ) -> impl Stream<Item = T> + Send {
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        }

        fn runs(seen: &Seen) -> Vec<String> {
            seen.runs.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        #[tokio::test]
        async fn nothing_runs_before_the_store_is_ready_and_a_wake_up_during_a_run_runs_it_once_more()
         {
            let (store, mut writer) = reflector::store();
            fill(&mut writer);
            let (wake, stop, seen, mut results) = controller(store);
            wake.send(ObjectRef::new("a").within("ns"))
                .unwrap_or_default();
            let early = tokio::time::timeout(Duration::from_millis(50), results.recv()).await;
            assert!(
                early.is_err(),
                "no reconcile before the first list is complete"
            );
            assert!(runs(&seen).is_empty());

            writer.apply_watcher_event(&watcher::Event::InitDone);
            let (first, _) = results
                .recv()
                .await
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("a reconcile of a"));
            assert_eq!(first.name, "a");

            // `slow` runs and waits; woken twice meanwhile, it runs once more after.
            let slow = ObjectRef::new("slow").within("ns");
            wake.send(slow.clone()).unwrap_or_default();
            while runs(&seen).len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            wake.send(slow.clone()).unwrap_or_default();
            wake.send(slow.clone()).unwrap_or_default();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(
                runs(&seen),
                ["a", "slow"],
                "never two runs of one object at once"
            );
            seen.release.notify_one();
            for _ in 0..2 {
                let (object, _) = results
                    .recv()
                    .await
                    .and_then(Result::ok)
                    .unwrap_or_else(|| panic!("a reconcile of slow"));
                assert_eq!(object, slow);
            }
            assert_eq!(runs(&seen), ["a", "slow", "slow"]);

            // A wake-up for an object the store lacks is reported, not run.
            wake.send(ObjectRef::new("gone").within("ns"))
                .unwrap_or_default();
            assert!(matches!(
                results.recv().await,
                Some(Err(ControllerError::ObjectNotFound(_)))
            ));

            stop.send(()).unwrap_or_default();
            assert!(
                results.recv().await.is_none(),
                "shut down and idle: the stream ends"
            );
        }
    }
}
